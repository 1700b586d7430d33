#!/usr/bin/env node
// The `analytics-api` command (package.json "bin"). The CLI is TypeScript, which Node.js 24 runs
// directly (type stripping); this file only checks the Node version and hands over.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `analytics-api: needs Node.js 24 or later, this is ${process.version}; run it with the project's Node (node_modules/.bin/node bin/analytics-api.js, or through npm/make)\n`,
  );
  process.exit(1);
}
const { runProcess } = await import('../service/cli/cli.ts');
process.exitCode = await runProcess(process.argv.slice(2));
