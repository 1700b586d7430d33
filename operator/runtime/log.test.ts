import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { createLogger } from './log.ts';

// The operator's lines in the project's one shape (contract/logging.ts), as its callers write them.

function captured(options: Parameters<typeof createLogger>[0] = {}) {
  const written: string[] = [];
  const log = createLogger({ ...options, destination: { write: (line) => written.push(line) } });
  return { log, lines: () => written.join('').split('\n').filter(Boolean) };
}

test('a line is JSON: the level as a label, an ISO time, the component, the message and the fields', () => {
  const { log, lines } = captured({ fields: { identity: 'op-1' } });
  log.child('informer', { resource: 'modelversions' }).warn('watch failed; retrying', { attempt: 2, error: new Error('connection reset') });
  const [line, ...rest] = lines();
  assert.deepEqual(rest, []);
  const l = JSON.parse(line!) as Record<string, unknown>;
  assert.equal(l.level, 'warn');
  assert.match(String(l.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(l.component, 'operator.informer');
  assert.equal(l.msg, 'watch failed; retrying');
  assert.equal(l.identity, 'op-1');
  assert.equal(l.resource, 'modelversions');
  assert.equal(l.attempt, 2);
  assert.equal(l.error, 'connection reset'); // an Error as its message
  assert.equal(line!.match(/"component"/g)?.length, 1, 'a child of a child names its component once');
  log.info('starting', { identity: 'op-1' });
  assert.equal(lines()[1]!.match(/"identity"/g)?.length, 1, "a logger's own field given again is written once");
});

test('lines below the level are not written; a grandchild is named by its path', () => {
  const { log, lines } = captured({ level: 'info' });
  const c = log.child('modelversion').child('import');
  c.debug('not shown');
  c.info('shown');
  assert.deepEqual(
    lines()
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .map((l) => [l.level, l.component, l.msg]),
    [['info', 'operator.modelversion.import', 'shown']],
  );
});

test('LOG_FORMAT=pretty writes text', async () => {
  const { log, lines } = captured({ format: 'pretty' });
  log.child('routing').info('routing written', { models: 3 });
  await new Promise((r) => setImmediate(r)); // through pino-pretty's stream
  const text = stripVTControlCharacters(lines().join('\n')); // colour codes, when the terminal takes them
  assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[operator\.routing\] routing written$/m);
  assert.match(text, /models: 3/);
  assert.doesNotMatch(text, /^\{/m);
});
