import { modelVersionCrd } from '../contract/crd.ts';

// Prints the CustomResourceDefinition as JSON (which kubectl reads as YAML too):
//   node operator/print-crd.ts | kubectl apply --server-side -f -
process.stdout.write(`${JSON.stringify(modelVersionCrd(), null, 2)}\n`);
