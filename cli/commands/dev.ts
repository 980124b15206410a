/** `lea dev up|down|status|env`: the embedded default servers. */
import type { Command } from 'commander';
import { down, envLines, status, up } from '../../lib/dev/servers.js';
import { probesFor, settingsFromEnv } from '../context.js';

export function registerDevCommands(program: Command): void {
  const dev = program
    .command('dev')
    .description('manage the embedded Temporal dev server and SeaweedFS S3 server');

  dev
    .command('up')
    .description('start whichever embedded server is not answering, wait until both are healthy (idempotent)')
    .action(async () => {
      const settings = settingsFromEnv();
      const results = await up(settings, probesFor(settings), (line) => console.error(line));
      for (const r of results) console.log(`${r.name}: ${r.action} at ${r.address}`);
      console.log(`Temporal Web UI: http://127.0.0.1:${settings.temporal.uiPort}`);
    });

  dev
    .command('down')
    .description('stop the servers that `lea dev up` started (and only those)')
    .action(async () => {
      const stopped = await down(settingsFromEnv());
      console.log(stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing to stop');
    });

  dev
    .command('status')
    .description('show whether both servers answer; exits 0 only when they do')
    .option('--json', 'print a JSON array')
    .action(async (opts: { json?: boolean }) => {
      const settings = settingsFromEnv();
      const states = await status(settings, probesFor(settings));
      if (opts.json) console.log(JSON.stringify(states, null, 2));
      else {
        for (const st of states) {
          const where = st.embedded ? `embedded${st.pid ? `, pid ${st.pid}` : ''}` : 'external';
          console.log(
            `${st.name}: ${st.answering ? 'up' : 'DOWN'} at ${st.address} (${where})${st.detail ? ` - ${st.detail}` : ''}`,
          );
        }
      }
      if (!states.every((st) => st.answering)) process.exitCode = 1;
    });

  dev
    .command('env')
    .description('print the variables another tool needs to reach these servers, as export lines')
    .action(() => {
      console.log(envLines(settingsFromEnv()));
    });
}
