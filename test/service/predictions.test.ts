import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closeTo, reference, SAMPLE_MODELS, startService, uploadSample, type TestService } from '../helpers/service.ts';

// Every sample model, uploaded through the API, answers as onnxruntime itself does (1e-5 relative)
// and as scikit-learn does (same labels, close values).

describe('predictions match onnxruntime and scikit-learn', () => {
  let svc: TestService;
  before(async () => {
    svc = await startService();
  });
  after(() => svc.close());

  for (const name of SAMPLE_MODELS) {
    test(name, async () => {
      const ref = await reference(name);
      const up = await uploadSample(svc.app, name);
      assert.equal(up.statusCode, 201, up.body);

      for (const sample of ref.samples) {
        const res = await svc.app.inject({ method: 'POST', url: `/api/v1/predict/${name}`, payload: { features: sample.features, model_id: name } });
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json();
        assert.equal(body.model_version, '1');
        assert.match(body.prediction_id, /^[0-9a-f-]{36}$/);
        assert.ok(!Number.isNaN(Date.parse(body.timestamp)));
        if (ref.task === 'regression') {
          assert.equal(body.confidence, null, 'a regressor has no confidence');
          assert.ok(closeTo(body.prediction, sample.onnxruntime.value!, 1e-5), `${body.prediction} vs onnxruntime ${sample.onnxruntime.value}`);
          assert.ok(closeTo(body.prediction, sample.sklearn.value!, 1e-3, 1e-3), `${body.prediction} vs sklearn ${sample.sklearn.value}`);
          continue;
        }
        const label = sample.onnxruntime.label!;
        assert.equal(sample.sklearn.label, label);
        if (typeof label === 'string') {
          assert.equal(body.label, label);
          assert.equal(body.prediction, ref.classes!.indexOf(label));
        } else {
          assert.equal(body.prediction, label);
          assert.equal(body.label, undefined);
        }
        const probs = sample.onnxruntime.probabilities!;
        assert.equal(body.probabilities.length, probs.length);
        for (const [i, p] of (body.probabilities as number[]).entries()) assert.ok(closeTo(p, probs[i]!, 1e-5, 1e-7), `p[${i}] ${p} vs ${probs[i]}`);
        const index = ref.classes!.indexOf(label);
        assert.ok(closeTo(body.confidence, probs[index]!, 1e-5), 'confidence is the predicted class probability');
        for (const [i, p] of sample.sklearn.probabilities!.entries()) assert.ok(closeTo(body.probabilities[i], p, 1e-3, 1e-4));
      }

      // The batch route: every row in one run, the same answers.
      const batch = await svc.app.inject({ method: 'POST', url: `/api/v1/predict/${name}/batch`, payload: { instances: ref.samples.map((s) => s.features) } });
      assert.equal(batch.statusCode, 200, batch.body);
      const rows = batch.json().predictions;
      assert.equal(rows.length, ref.samples.length);
      assert.equal(batch.json().prediction_ids.length, ref.samples.length);
      ref.samples.forEach((s, i) => {
        const expected =
          ref.task === 'regression'
            ? s.onnxruntime.value!
            : typeof s.onnxruntime.label === 'string'
              ? ref.classes!.indexOf(s.onnxruntime.label)
              : s.onnxruntime.label!;
        assert.ok(closeTo(rows[i].prediction, expected as number, 1e-5), `row ${i}`);
      });
    });
  }
});
