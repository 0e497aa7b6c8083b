// Test support: the command line of a `moat agent` child process enforcing a lab node.
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../src/lab/lab.js';
import { LAB_POD_INTERFACES } from '../../src/lab/plan.js';

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
    // The lab's pod interfaces, and the CNI result cache the lab writes for this node.
    '--pod-interfaces',
    LAB_POD_INTERFACES.join(','),
    '--cni-results-dir',
    lab.cniResultsDir(0),
    ...extra,
  ];
}
