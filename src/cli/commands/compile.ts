// `moat compile`: print the nftables ruleset moat would load on a node, as one nft script.
import { Option, type Command } from 'commander';
import { renderIpsetRestore, renderIptables } from '../../dataplane/render-iptables.js';
import { compile, DEFAULT_POD_INTERFACES, DEFAULT_TABLE, renderNft } from '../../dataplane/index.js';
import { UsageError } from '../../errors.js';
import {
  addFlowLogOptions,
  collectValues,
  loadSnapshot,
  parseFlowLogFlags,
  parseInterfaces,
  type FlowLogFlags,
} from '../io.js';

interface CompileFlags extends FlowLogFlags {
  filename: string[];
  node?: string;
  table: string;
  policeNodeEgress?: boolean;
  podInterfaces: string;
  backend: 'auto' | 'nftables' | 'iptables';
}

/** nft identifiers: a letter or underscore, then letters, digits, '_', '-', '.'; moat keeps them short. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

export function registerCompile(program: Command): void {
  const cmd = program
    .command('compile')
    .description(
      'print the nftables ruleset for a node (an `nft -f` script that atomically replaces the table)',
    )
    .option(
      '-f, --filename <path>',
      'file, directory (recursive) or - for stdin; repeatable',
      collectValues,
      [],
    )
    .option('--node <name>', 'compile for this node (default: every pod is local)')
    .option('--table <name>', 'nft table name (family inet)', DEFAULT_TABLE)
    .option('--police-node-egress', 'police pod -> own-node egress instead of always allowing it')
    .option(
      '--pod-interfaces <globs>',
      'host-side pod interfaces whose packets must carry their pod address ("" turns the check off)',
      DEFAULT_POD_INTERFACES.join(','),
    )
    .addOption(
      new Option(
        '--backend <name>',
        'print for nftables (an nft -f script) or iptables (ipset restore, iptables-restore and ip6tables-restore inputs); auto: nftables (compile does not probe the host)',
      )
        .choices(['auto', 'nftables', 'iptables'])
        .default('auto'),
    );
  addFlowLogOptions(cmd).action(async (flags: CompileFlags) => {
    if (flags.filename === undefined || flags.filename.length === 0) {
      throw new UsageError('compile: -f PATH is required (a file, a directory, or - for stdin)');
    }
    if (!TABLE_NAME.test(flags.table)) {
      throw new UsageError(
        `compile: --table "${flags.table}": must start with a letter or _ and contain only letters, digits, _ and - (at most 64)`,
      );
    }
    const { flowLog, audit } = parseFlowLogFlags(flags);
    const snap = await loadSnapshot(flags.filename);
    if (
      flags.node !== undefined &&
      !snap.nodes.some((n) => n.name === flags.node) &&
      !snap.pods.some((p) => p.nodeName === flags.node)
    ) {
      process.stderr.write(
        `moat: compile: node "${flags.node}" has no Node object and no pods in the input\n`,
      );
    }
    const rs = compile(snap, {
      table: flags.table,
      ...(flags.node !== undefined ? { nodeName: flags.node } : {}),
      ...(flags.policeNodeEgress === true ? { policeNodeEgress: true } : {}),
      podInterfaces: parseInterfaces('--pod-interfaces', flags.podInterfaces),
      flowLog,
      ...(audit ? { audit } : {}),
    });
    if (flags.backend !== 'iptables') {
      process.stdout.write(renderNft(rs));
      return;
    }
    const ipt = renderIptables(rs);
    const hooks = ipt.hooks.map((h) => `#   -t ${h.table} -I ${h.builtin} 1 -j ${h.target}`).join('\n');
    process.stdout.write(
      `# ipset restore\n${renderIpsetRestore(ipt.sets)}` +
        `# iptables-restore --noflush\n${ipt.v4}` +
        `# ip6tables-restore --noflush\n${ipt.v6}` +
        `# hooks: each inserted once, first, by iptables and ip6tables:\n${hooks}\n` +
        (rs.bridge !== undefined
          ? '# not rendered: the bridge-family source check of bridged pod ports (nftables only)\n'
          : ''),
    );
  });
}
