import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { importSampleModels } from '../../service/store/sample-models.ts';
import { MODELS, reference, startService, type TestService } from '../helpers/service.ts';

// /docs as a person uses it: in a real headless Chromium (Debian's, `make system-packages`), against
// the service with API_TOKEN set and the sample models, Authorize with the token, then run the
// operations with what the page fills in. And /docs/json as a client generator reads it.

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'docs-page-token-0123456789';
type Operation = {
  operationId?: string;
  security?: unknown[];
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, { content?: object }>;
};
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

let svc: TestService;
let base: string;
let doc: Document;

before(async () => {
  svc = await startService({ API_TOKEN: TOKEN });
  await importSampleModels(MODELS, svc.app.ctx.store, svc.app.ctx.registry, svc.app.log);
  base = await svc.app.listen({ port: 0, host: '127.0.0.1' });
  doc = (await (await fetch(`${base}/docs/json`)).json()) as Document;
});
after(() => svc.close());

const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));
const byId = (id: string) => operations().find((o) => o.op.operationId === id)!;

describe('GET /docs/json', () => {
  test('is a valid OpenAPI 3 document', async () => {
    assert.match(doc.openapi, /^3\./);
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  test('every operation has an operationId a generated client can call', () => {
    const ids = operations().map((o) => o.op.operationId);
    assert.deepEqual(
      operations()
        .filter((o) => !o.op.operationId)
        .map((o) => `${o.method} ${o.path}`),
      [],
    );
    assert.equal(new Set(ids).size, ids.length, 'no two alike');
    for (const id of [
      'uploadModel',
      'listModels',
      'getModel',
      'promoteModelVersion',
      'deleteModelVersion',
      'getRollout',
      'abortRollout',
      'predict',
      'predictBatch',
      'sendFeedback',
      'health',
      'ready',
      'metrics',
      'serverMetadata',
      'serverLive',
      'serverReady',
      'modelMetadata',
      'modelReady',
      'modelInfer',
      'modelVersionInfer',
    ])
      assert.ok(ids.includes(id), id);
  });

  test('the operations that need the token require the bearer scheme, and only they', () => {
    const secured = operations()
      .filter((o) => o.op.security)
      .map((o) => o.op.operationId)
      .sort();
    assert.deepEqual(secured, ['abortRollout', 'deleteModelVersion', 'promoteModelVersion', 'repositoryModelLoad', 'repositoryModelUnload', 'uploadModel']);
    for (const id of secured) assert.deepEqual(byId(id!).op.security, [{ bearer: [] }]);
  });

  test('4xx errors are documented as they are sent: problem+json, {"error"} under /v2; a 204 has no body', () => {
    for (const { path, method, op } of operations())
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) < 400 || Number(status) >= 500) continue;
        const want = path.startsWith('/v2') ? 'application/json' : 'application/problem+json';
        assert.deepEqual(Object.keys(response.content ?? {}), [want], `${method} ${path} ${status}`);
      }
    assert.equal(byId('deleteModelVersion').op.responses['204']!.content, undefined);
    for (const id of ['modelMetadata', 'modelInfer']) assert.ok(byId(id).op.responses['404'], `${id} documents its 404`);
  });

  test('request bodies: both upload forms, and V2 infer as JSON or binary tensor data', () => {
    assert.deepEqual(Object.keys(byId('uploadModel').op.requestBody!.content), ['application/json', 'application/octet-stream']);
    assert.deepEqual(Object.keys(byId('modelInfer').op.requestBody!.content), ['application/json', 'application/octet-stream']);
  });

  test('what the document promises about parameters holds', async () => {
    // A JSON upload refuses the octet-stream form's query rather than ignoring it.
    const upload = await fetch(`${base}/api/v1/models?name=iris&version=2`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'iris', version: '2', model_data: 'AAAA' }),
    });
    assert.equal(upload.status, 400);
    assert.match(upload.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.match(((await upload.json()) as { detail: string }).detail, /query parameters \(name, version\) are for application\/octet-stream uploads/);
    // The longest name@version is routed; a longer path parameter is a documented 400 problem.
    const longest = await fetch(`${base}/api/v1/predict/${'a'.repeat(63)}@${'1'.repeat(63)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"features":{}}',
    });
    assert.equal(longest.status, 404);
    assert.match(((await longest.json()) as { code: string }).code, /^(MODEL|VERSION)_NOT_FOUND$/);
    const tooLong = await fetch(`${base}/api/v1/models/${'a'.repeat(300)}`);
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(((await tooLong.json()) as { code: string }).code, 'VALIDATION_FAILED');
  });
});

describe('the /docs page in Chromium', { timeout: 45_000 }, () => {
  let userDataDir: string;
  let browser: BrowserContext;
  let page: Page;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: make system-packages installs it`);
    userDataDir = await mkdtemp(join(tmpdir(), 'docs-chromium-'));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(10_000);
    await page.goto(`${base}/docs`);
    await page.locator('.opblock').first().waitFor();
  });
  after(async () => {
    await browser?.close();
    await rm(userDataDir, { recursive: true, force: true });
  });

  /** Opens an operation, "Try it out", "Execute" with what the page filled in; the status and body it shows. */
  async function execute(tag: string, operationId: string): Promise<{ op: Locator; status: number; body: string }> {
    const op = page.locator(`#operations-${tag}-${operationId}`);
    if (!(await op.locator('.opblock-body').isVisible())) await op.locator('.opblock-summary').click();
    const tryIt = op.getByRole('button', { name: 'Try it out' });
    if (await tryIt.isVisible()) await tryIt.click();
    const shown = op.locator('.live-responses-table .response');
    const clear = op.getByRole('button', { name: 'Clear' });
    if (await clear.isVisible()) {
      await clear.click();
      await shown.waitFor({ state: 'detached' });
    }
    await op.getByRole('button', { name: 'Execute' }).click();
    await shown.waitFor();
    const status = Number(await shown.locator('.response-col_status').textContent());
    const body = (await shown.locator('.response-col_description pre').first().textContent()) ?? '';
    return { op, status, body };
  }

  test('Authorize with the token, then promote answers 200 (401 before)', async () => {
    const refused = await execute('models', 'promoteModelVersion');
    assert.equal(refused.status, 401, refused.body);
    assert.equal(JSON.parse(refused.body).code, 'UNAUTHORIZED');
    assert.match((await refused.op.locator('.live-responses-table').textContent()) ?? '', /content-type: application\/problem\+json/);

    await page.locator('.auth-wrapper button.authorize').click();
    const modal = page.locator('.modal-ux');
    await modal.getByLabel('auth-bearer-value').fill(TOKEN);
    await modal.getByRole('button', { name: 'Apply credentials' }).click();
    await modal.getByRole('button', { name: 'Close' }).click();

    const promoted = await execute('models', 'promoteModelVersion');
    assert.equal(promoted.status, 200, promoted.body);
    assert.deepEqual(
      { event: JSON.parse(promoted.body).event, version: JSON.parse(promoted.body).version },
      { event: 'promoted', version: '1' },
      'the pre-filled iris-logreg version 1',
    );
    assert.match((await promoted.op.locator('.curl-command').textContent()) ?? '', new RegExp(`Authorization: Bearer ${TOKEN}`));
  });

  test("predict with the pre-filled example answers 200 with the reference model's label", async () => {
    const { status, body } = await execute('predictions', 'predict');
    assert.equal(status, 200, body);
    const answer = JSON.parse(body) as { model_id: string; prediction: number; probabilities: number[] };
    assert.equal(answer.model_id, 'iris-logreg');
    const example = (byId('predict').op.requestBody!.content['application/json'] as { schema: { example: { features: Record<string, number> } } }).schema
      .example;
    const sample = (await reference('iris-logreg')).samples.find(
      (s) => JSON.stringify(Object.entries(s.features).sort()) === JSON.stringify(Object.entries(example.features).sort()),
    );
    assert.ok(sample, "the example is a row of models/iris-logreg.json's samples");
    assert.equal(answer.prediction, sample.onnxruntime.label);
    assert.equal(answer.probabilities.length, 3);
  });

  test('V2 infer with the pre-filled example answers 200 with the output tensors', async () => {
    const { status, body } = await execute('v2', 'modelInfer');
    assert.equal(status, 200, body);
    const answer = JSON.parse(body) as { model_name: string; outputs: Array<{ name: string; data: number[] }> };
    assert.equal(answer.model_name, 'iris-logreg');
    assert.deepEqual(
      answer.outputs.map((o) => o.name),
      ['output_label', 'probabilities'],
    );
  });
});
