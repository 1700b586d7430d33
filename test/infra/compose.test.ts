import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REDIS_DATA_DIR } from '../../contract/names.ts';
import { figures } from '../../contract/figures.ts';
import { configSchema } from '../../service/config.ts';
import { loadYaml, repoRoot, type Obj } from './helpers.ts';

// compose.yaml: the specification's compose service, with the figures of contract/figures.ts, plus
// Redis and the service's environment.

const compose = loadYaml(join(repoRoot, 'compose.yaml'))[0];
const api = compose.services['analytics-api'] as Obj;
const env: Record<string, string | undefined> = Object.fromEntries(
  (api.environment as string[]).map((e) => {
    const i = e.indexOf('=');
    return i < 0 ? [e, undefined] : [e.slice(0, i), e.slice(i + 1)];
  }),
);

describe('compose.yaml', () => {
  test("the specification's service: name, build, resources from figures.ts", () => {
    assert.deepEqual(api.build, { context: '.', dockerfile: 'Dockerfile' });
    const { limits, reservations } = api.deploy.resources;
    // Compose writes cpus as a string and memory with a G suffix (GiB).
    assert.equal(limits.cpus, String(figures.resources.limits.cpu));
    assert.equal(limits.memory, `${figures.resources.limits.memoryGiB}G`);
    assert.equal(reservations.cpus, String(figures.resources.requests.cpu));
    assert.equal(reservations.memory, `${figures.resources.requests.memoryGiB}G`);
  });

  test('the model store is a bind mount with consistency: cached; file watchers poll', () => {
    const models = (api.volumes as Obj[]).find((v) => v.target === env.MODELS_DIR);
    assert.ok(models, 'a volume at MODELS_DIR');
    assert.equal(models.type, 'bind');
    assert.equal(models.consistency, 'cached');
    assert.equal(env.WATCHPACK_POLLING, 'true');
    assert.equal(env.CHOKIDAR_USEPOLLING, 'true');
  });

  test("Redis with its data at /data/redis, and the service's environment (cache TTL, daily backups kept 7 days)", () => {
    const redis = compose.services.redis as Obj;
    assert.equal(redis.image, 'redis:7-alpine');
    assert.deepEqual(redis.command, ['redis-server', '--appendonly', 'yes', '--dir', REDIS_DATA_DIR]);
    const data = (redis.volumes as Obj[]).find((v) => v.target === REDIS_DATA_DIR);
    assert.equal(data?.type, 'volume');
    assert.ok(data.source in compose.volumes, 'a named volume');
    // The service reads the same volume (read-only) to back it up.
    assert.ok((api.volumes as Obj[]).some((v) => v.source === data.source && v.target === REDIS_DATA_DIR && v.read_only === true));
    assert.equal(env.REDIS_URL, 'redis://redis:6379');
    assert.equal(env.CACHE_TTL_SECONDS, String(figures.cacheTtlSeconds));
    assert.equal(env.BACKUP_SCHEDULE, figures.backup.schedule);
    assert.equal(env.BACKUP_RETENTION_DAYS, String(figures.backup.retentionDays));
    assert.equal(env.REDIS_DATA_DIR, REDIS_DATA_DIR);
    assert.ok(
      (api.volumes as Obj[]).some((v) => v.target === env.BACKUP_DIR),
      'a volume at BACKUP_DIR',
    );
    assert.equal(api.depends_on.redis.condition, 'service_healthy');
  });

  test('the environment is one the service accepts', () => {
    const parsed = configSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)));
    assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
    assert.equal(parsed.data.HOST, '0.0.0.0');
    assert.equal(parsed.data.MODELS_DIR, '/app/models');
  });
});
