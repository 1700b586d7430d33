import { z } from 'zod';
import { compiled } from '../compiled-schemas.ts';
import { MAX_FEATURES } from '../inference/model-interface.ts';
import { modelNameSchema, versionSchema } from '../../contract/model-names.ts';
import { RolloutSpec, RolloutStatus } from '../../contract/rollout.ts';

// The REST API's shapes, once: request validation, TypeScript types and the OpenAPI document all
// come from these. Names follow the specification (UploadModelRequest, PredictionRequest,
// PredictionResponse).

const featureNames = z
  .array(z.string().min(1).max(256))
  .min(1)
  .max(MAX_FEATURES)
  .describe("Ordered input feature names: the order of the columns of the model's [batch, features] input");

export const UploadModelRequest = z
  .object({
    name: modelNameSchema.describe('Model name'),
    version: versionSchema.describe('Version; immutable once uploaded'),
    metadata: z.record(z.string(), z.unknown()).default({}).describe('Free-form metadata kept with the version'),
    model_data: z
      .preprocess((v) => (typeof v === 'string' ? v.replace(/\s+/g, '') : v), z.base64('model_data must be the .onnx file encoded as standard base64').min(1))
      .describe('The .onnx file, base64-encoded (line breaks allowed)'),
    features: featureNames.optional(),
    promote: z.boolean().default(false).describe('Serve this version at once (the first version of a model always is)'),
    rollout: RolloutSpec.optional().describe(
      'Instead of promote: roll this version out against the production one (a canary or a shadow); promoted when every step passes',
    ),
  })
  .strict();

const queryBoolean = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

// The query of an application/octet-stream upload; a JSON upload with any of these is a 400.
export const UploadModelQuery = z
  .object({
    name: modelNameSchema.describe('Model name (application/octet-stream uploads: required)'),
    version: versionSchema.describe('Version (application/octet-stream uploads: required)'),
    features: z
      .union([z.string(), z.array(z.string())])
      .optional()
      .describe('Feature names: repeated (features=a&features=b) or one JSON array'),
    promote: queryBoolean.optional().describe('Serve this version at once'),
    metadata: z.string().optional().describe('Metadata as a JSON object'),
  })
  .strict();

/** An application/octet-stream upload's body: the .onnx file itself (documentation only; the handler reads the bytes). */
export const OnnxFile = z.string().meta({ format: 'binary', description: 'The .onnx file as it is, with name and version in the query' });

/** A path parameter's longest value: a model name and a version (63 characters each) with the "@" between them fit. */
export const MAX_PATH_PARAMETER = 200;

const modelId = z
  .string()
  .min(1)
  .max(MAX_PATH_PARAMETER)
  .meta({ description: 'Model name (predictions: "{name}@{version}" pins a version)', example: 'iris-logreg' });

export const ModelParams = compiled(z.object({ model_id: modelId }));
export const VersionParams = z.object({ model_id: modelId, version: z.string().min(1).max(MAX_PATH_PARAMETER).meta({ example: '1' }) });

// One row of models/iris-logreg.json's samples: the examples on /docs answer 200 against the sample models.
const irisRow = { 'sepal length (cm)': 5.3, 'sepal width (cm)': 3.7, 'petal length (cm)': 1.5, 'petal width (cm)': 0.2 };
const irisRow2 = { 'sepal length (cm)': 5.7, 'sepal width (cm)': 2.8, 'petal length (cm)': 4.5, 'petal width (cm)': 1.3 };

// Values are checked against the model (ServedModel.rows in inference/served-model.ts), so that one 400 names every
// missing, unknown, non-numeric or non-finite feature at once.
const FeatureValues = z
  .record(z.string(), z.custom<number>(() => true).meta({ type: 'number' }))
  .describe('Feature name → value; every feature of the model, nothing else');

// compiled(): checked by Ajv and written by fast-json-stringify on the hot path (compiled-schemas.ts).
export const PredictionRequest = compiled(
  z
    .object({
      features: FeatureValues,
      model_id: z.string().optional().describe("Optional; when given it must equal the path's model id"),
    })
    .strict()
    .meta({ example: { features: irisRow } }),
);

export const BatchPredictionRequest = compiled(
  z
    .object({
      instances: z.array(FeatureValues).min(1).max(10_000),
      model_id: z.string().optional(),
    })
    .strict()
    .meta({ example: { instances: [irisRow, irisRow2] } }),
);

const PredictionFields = {
  prediction: z.number().describe("The predicted label when numeric, the class index for string labels, or the regressor's value"),
  confidence: z.number().nullable().describe("The predicted class's probability; null for regressors, which have none"),
  label: z.string().optional().describe('The predicted class label when it is a string'),
  probabilities: z.array(z.number()).optional().describe('Class probabilities in class order'),
};

export const PredictionResponse = compiled(
  z.object({
    ...PredictionFields,
    timestamp: z.string().describe('ISO 8601 time of the answer'),
    model_version: z.string(),
    model_id: z.string(),
    prediction_id: z.string().describe('Quote it in POST /api/v1/feedback with the true outcome'),
  }),
);

export const BatchPredictionResponse = compiled(
  z.object({
    predictions: z.array(z.object(PredictionFields)),
    timestamp: z.string(),
    model_version: z.string(),
    model_id: z.string(),
    prediction_ids: z.array(z.string()),
  }),
);

const ValueSignature = z.object({
  name: z.string(),
  isTensor: z.boolean(),
  type: z.string().optional(),
  shape: z.array(z.union([z.number(), z.string()])).optional(),
});

export const VersionDescription = z.object({
  name: z.string(),
  version: z.string(),
  sha256: z.string(),
  sizeBytes: z.number(),
  created: z.string(),
  features: z.array(z.string()),
  signature: z.object({ inputs: z.array(ValueSignature), outputs: z.array(ValueSignature) }),
  metadata: z.record(z.string(), z.unknown()),
  production: z.boolean().optional(),
  loaded: z.boolean().optional(),
});

export const PromoteRequest = z
  .object({ rollout: RolloutSpec.optional().describe('Roll the version out against the production one instead of serving it at once') })
  .strict()
  // /docs pre-fills an empty body: promote at once.
  .meta({ example: {} });

export const RolloutResponse = z.object({
  model: z.string(),
  version: z.string().describe('The version being (or last) rolled out'),
  rollout: RolloutStatus,
});

export const HistoryEventSchema = z.object({
  time: z.string(),
  event: z.enum(['uploaded', 'promoted', 'rolled_back', 'deleted', 'rollout_started', 'rollout_rolled_back']),
  version: z.string(),
  previous: z.string().optional(),
  detail: z.string().optional().describe('What a rollout was against, or why it ended'),
});

export const ModelDescription = z.object({
  name: z.string(),
  production_version: z.string().nullable(),
  versions: z.array(VersionDescription),
  history: z.array(HistoryEventSchema),
});

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number(),
    code: z.string(),
    detail: z.string(),
    instance: z.string(),
    errors: z.array(z.object({ field: z.string().optional(), message: z.string() })).optional(),
  })
  .describe('RFC 9457 problem details');

export const FeedbackRequest = z
  .object({
    prediction_id: z.string().uuid().describe('The prediction_id of an earlier answer'),
    actual: z.union([z.number(), z.string()]).describe('The true label (classifiers) or value (regressors)'),
  })
  .strict();

export const FeedbackResponse = z.object({
  model: z.string(),
  version: z.string(),
  correct: z.boolean().optional().describe('Classifiers: whether the prediction was right'),
  absolute_error: z.number().optional().describe('Regressors: |actual - predicted|'),
});
