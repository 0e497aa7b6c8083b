// The agent's flow-log half, alone in its own process (as in the agent, whose event loop is free):
// reads an NFLOG group in a netns through NetnsNflogReader and the FlowService, counts the records,
// and on SIGTERM prints its figures as one JSON line. Used by dataplane-traffic.ts (variant flowlog).
// It compiles the bench's ruleset itself (compile is deterministic) to know the counters' names.
//   node dist/bench/flow-sink.js NETNS TABLE GROUP RATE BURST
import { compile } from '../src/dataplane/index.js';
import { NetnsNflogReader } from '../src/flowlog/nflog-netns.js';
import { FlowService } from '../src/flowlog/service.js';
import { benchSnapshot } from './dataplane-traffic.js';

const [netns, table, groupText, rate, burst] = process.argv.slice(2);
if (netns === undefined || table === undefined || groupText === undefined)
  throw new Error('usage: flow-sink NETNS TABLE GROUP RATE BURST');
let records = 0;
let unattributedOk = 0;
const flows = new FlowService({ node: 'bench', sinks: [() => records++], recent: 0 });
const snap = benchSnapshot();
const rs = compile(snap, {
  table,
  nodeName: 'node-0',
  podInterfaces: ['moat*'],
  flowLog: { mode: 'policy', group: Number(groupText), rate: Number(rate), burst: Number(burst) },
});
flows.setGeneration(rs, snap);
await flows.start(() => NetnsNflogReader.open({ netns, group: Number(groupText) }));
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void (async () => {
    // Let the reader drain what the kernel already sent.
    for (let last = -1, n = 0; n < 20 && last !== (flows.readerStats()?.received ?? 0); n++) {
      last = flows.readerStats()?.received ?? 0;
      await new Promise((r) => setTimeout(r, 250));
    }
    const st = flows.readerStats();
    await flows.close();
    unattributedOk = flows.logger.stats().unattributed;
    process.stdout.write(`${JSON.stringify({ ...st, records, unattributed: unattributedOk })}\n`);
    process.exit(0);
  })();
});
