// `moat lint -o sarif`: SARIF 2.1.0 (OASIS), the format code scanning ingests. One run; the tool's
// rules are every lint check with its default level; each finding is a result located at the
// object's manifest (file and line of the object; moat does not track lines of fields). Pure.
import { STDIN_NAME } from '../model/load.js';
import { CHECKS, type Finding, type Severity } from './lint.js';

export type SarifLevel = 'error' | 'warning' | 'note';

/** SARIF's levels: "error", "warning", "note" (and "none"); moat's info is a note. */
export const sarifLevel = (s: Severity): SarifLevel => (s === 'info' ? 'note' : s);

export interface SarifLog {
  $schema: string;
  version: '2.1.0';
  runs: {
    tool: {
      driver: {
        name: string;
        version: string;
        rules: {
          id: string;
          name: string;
          shortDescription: { text: string };
          defaultConfiguration: { level: SarifLevel };
        }[];
      };
    };
    results: {
      ruleId: string;
      ruleIndex: number;
      level: SarifLevel;
      message: { text: string };
      locations: {
        physicalLocation?: { artifactLocation: { uri: string }; region: { startLine: number } };
        logicalLocations: { fullyQualifiedName: string; kind: string }[];
      }[];
    }[];
  }[];
}

const pascal = (id: string) =>
  id
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');

/** A relative file path as a URI reference: forward slashes, each segment percent-encoded. */
function fileUri(file: string): string {
  return file
    .split(/[\\/]/)
    .map((s) => encodeURIComponent(s))
    .join('/');
}

export function toSarif(findings: readonly Finding[], version: string): SarifLog {
  const ids = Object.keys(CHECKS).sort();
  const rules = ids.map((id) => ({
    id,
    name: pascal(id),
    shortDescription: { text: CHECKS[id]!.summary },
    defaultConfiguration: { level: sarifLevel(CHECKS[id]!.severity) },
  }));
  const results = findings.map((f) => {
    const o = f.object;
    const located = f.origin !== undefined && f.origin.file !== STDIN_NAME && f.origin.line >= 1;
    return {
      ruleId: f.check,
      ruleIndex: ids.indexOf(f.check),
      level: sarifLevel(f.severity),
      message: { text: `${f.field}: ${f.message}. Fix: ${f.fix}` },
      locations: [
        {
          ...(located
            ? {
                physicalLocation: {
                  artifactLocation: { uri: fileUri(f.origin.file) },
                  region: { startLine: f.origin.line },
                },
              }
            : {}),
          logicalLocations: [
            {
              fullyQualifiedName: `${o.kind}/${o.namespace !== undefined ? `${o.namespace}/` : ''}${o.name}`,
              kind: 'object',
            },
          ],
        },
      ],
    };
  });
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'moat', version, rules } },
        results,
      },
    ],
  };
}
