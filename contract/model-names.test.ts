import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareVersions, isVersionName, versionSchema } from './model-names.ts';

test('versions are semantic versions, a missing part reading as 0', () => {
  for (const v of ['1', '2', '1.4', '1.0.0', '10.20.30', '1.0.0-rc.1', '2-alpha', '1.0.0-0.3.7', '1.0.0-x-y-z.-'])
    assert.ok(isVersionName(v), `${v} is a version`);
  for (const v of ['v2', '01', '1.02', '1.0.0.0', '1.0.0+build', '1.0.0-RC1', '1.0.0-01', '', 'latest', '1..0', '1.0.0-', `${'1'.repeat(64)}`])
    assert.ok(!isVersionName(v), `${v} is not`);
  assert.match(versionSchema.safeParse('v2').error?.issues[0]?.message ?? '', /a version is a semantic version/);
});

test('semantic-version order', () => {
  const sorted = ['10', '2', '1.0.0-rc.1', '1', '1.0.1', '2.0.0-beta', '1.10'].sort(compareVersions);
  assert.deepEqual(sorted, ['1.0.0-rc.1', '1', '1.0.1', '1.10', '2.0.0-beta', '2', '10']);
  assert.equal(compareVersions('2', '2.0.0'), 0);
});
