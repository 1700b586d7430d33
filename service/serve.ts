import { buildApp } from './app.ts';
import { resolveRedisDataDir } from './backup/create.ts';
import { startBackupScheduler } from './backup/scheduler.ts';
import type { Config } from './config.ts';
import { connectionDrainer } from './http/drain.ts';
import { httpWorkerIndex, reportListening, runHttpWorkers, runsHttpWorkers } from './http-workers.ts';
import { importSampleModels } from './store/sample-models.ts';

/**
 * Runs the service with a configuration read from the environment (`analytics-api serve`, and
 * `node service/main.ts`): builds the app, imports the sample models, schedules backups and
 * listens. Resolves once it listens; SIGINT/SIGTERM close it and exit the process (0).
 * HTTP_WORKERS > 1: this process forks that many workers that do all this (http-workers.ts).
 */
export async function serve(config: Config): Promise<void> {
  if (runsHttpWorkers(config)) return runHttpWorkers(config);
  // The first worker (or the only process) imports the samples before the others start, and backs up.
  const first = httpWorkerIndex() === 0;
  const app = await buildApp({ config });
  if (config.SAMPLE_MODELS_DIR && first) await importSampleModels(config.SAMPLE_MODELS_DIR, app.ctx.store, app.ctx.registry, app.log);

  // Scheduled backups for docker compose and `make run`; in Kubernetes the operator's CronJobs run the CLI.
  const backups =
    config.CONTROL_PLANE === 'standalone' && config.BACKUP_DIR && first
      ? startBackupScheduler({
          schedule: config.BACKUP_SCHEDULE,
          dest: config.BACKUP_DIR,
          modelsDir: config.MODELS_DIR,
          redisDir: resolveRedisDataDir(config.REDIS_DATA_DIR),
          retentionDays: config.BACKUP_RETENTION_DAYS,
          log: app.log.child({ component: 'backup' }),
          onRun: (run) => app.ctx.metrics.recordBackup(run.ok, run.archive?.sizeBytes),
        })
      : undefined;

  // On SIGTERM (an orchestrator's stop), clients on open keep-alive connections are told to go
  // elsewhere before the server closes (http/drain.ts); Ctrl-C (SIGINT) closes at once. Either way
  // connections with no request in flight are closed first: they would hold the close for ever.
  const drainer = connectionDrainer(app);
  const drainOpenConnections = async () => {
    app.log.info({ connections: drainer.open(), timeoutSeconds: config.SHUTDOWN_DRAIN_SECONDS }, 'draining: answering with Connection: close');
    const left = await drainer.drain(config.SHUTDOWN_DRAIN_SECONDS * 1000);
    if (left > 0) app.log.info({ connections: left }, 'closing the connections still open');
  };
  // A worker may be sent the signal twice (by a terminal's Ctrl-C and by its primary): once is enough.
  let shuttingDown = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (shuttingDown) return;
      shuttingDown = true;
      app.log.info({ signal }, 'shutting down');
      void backups?.stop(); // a backup cut short leaves only an ignored .partial
      const drained = signal === 'SIGTERM' && drainer.open() > 0 ? drainOpenConnections() : Promise.resolve();
      drained
        .then(() => {
          drainer.closeIdle();
          return app.close();
        })
        .then(
          () => process.exit(0),
          () => process.exit(1),
        );
    });
  }
  try {
    await app.listen({ port: config.PORT, host: config.HOST });
  } catch (err) {
    app.log.fatal({ err }, `cannot listen on ${config.HOST}:${config.PORT}; set PORT (0: any free port) or HOST`);
    process.exit(1);
  }
  try {
    await app.ctx.grpc?.listen();
  } catch (err) {
    app.log.fatal({ err }, `gRPC cannot listen on port ${config.GRPC_PORT}; set GRPC_PORT (0: any free port, off: no gRPC)`);
    process.exit(1);
  }
  reportListening();
}
