// Test support: the command line of a `moat agent` child process enforcing a lab node.
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../src/lab/lab.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.js', import.meta.url));

/** `node` arguments: the agent on the lab's node netns, ephemeral loopback ports, no drift timer. */
export function labAgentArgs(kubeconfig: string, lab: Lab, extra: readonly string[] = []): string[] {
  return [
    BIN,
    'agent',
    '--kubeconfig',
    kubeconfig,
    '--node-name',
    lab.nodeName,
    '--netns',
    lab.nodeNetns,
    '--metrics-addr',
    '127.0.0.1:0',
    '--health-addr',
    '127.0.0.1:0',
    '--drift-interval',
    '0',
    ...extra,
  ];
}
