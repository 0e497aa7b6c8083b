// Turns the Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json, shipped in the
// k8s.io/kubernetes Go module) into one self-contained, strict JSON schema per kind, laid out for
// kubeconform's -schema-location template `DIR/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json`.
// This is what lets kubeconform validate offline: its default schemas come from GitHub at run time.
//
// Usage: node dist/test/deploy/k8s-schemas.js SWAGGER_JSON OUT_DIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const REF_PREFIX = '#/definitions/';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';

export interface KindSchema {
  /** Path relative to the output directory. */
  readonly path: string;
  readonly schema: JsonObject;
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Rewrites one schema node: drops vendor extensions, widens the two "string" types that YAML
 * also writes as numbers (IntOrString, Quantity), and closes every object that lists its
 * properties (strict: an unknown field is an error, as `kubectl apply --validate=strict` says).
 */
function rewrite(node: Json, refs: Set<string>): Json {
  if (Array.isArray(node)) return node.map((n) => rewrite(n, refs));
  if (!isObject(node)) return node;
  if (node['format'] === 'int-or-string') return { anyOf: [{ type: 'string' }, { type: 'integer' }] };
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-')) continue;
    if (key === '$ref' && typeof value === 'string' && value.startsWith(REF_PREFIX)) {
      refs.add(value.slice(REF_PREFIX.length));
    }
    // `properties` maps field names to schemas: rewrite each value, keep the names.
    if (key === 'properties' && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewrite(v, refs)]));
      continue;
    }
    out[key] = rewrite(value, refs);
  }
  if (isObject(out['properties']) && out['additionalProperties'] === undefined) {
    out['additionalProperties'] = false;
  }
  return out;
}

function definitionFor(name: string, definitions: JsonObject): Json {
  if (name === QUANTITY) return { anyOf: [{ type: 'string' }, { type: 'number' }] };
  const def = definitions[name];
  if (def === undefined) throw new Error(`swagger: $ref to missing definition ${name}`);
  return def;
}

/** One schema per (group, version, kind) that the API serves as a top-level object. */
export function kindSchemas(swagger: JsonObject): KindSchema[] {
  const definitions = swagger['definitions'];
  if (!isObject(definitions)) throw new Error('swagger: no definitions');
  const out: KindSchema[] = [];
  for (const def of Object.values(definitions)) {
    if (!isObject(def)) continue;
    const gvks = def['x-kubernetes-group-version-kind'];
    if (!Array.isArray(gvks) || gvks.length !== 1) continue; // List/Status/WatchEvent-like shared types
    const gvk = gvks[0];
    if (!isObject(gvk)) continue;
    const { group, version, kind } = gvk;
    if (typeof group !== 'string' || typeof version !== 'string' || typeof kind !== 'string') continue;
    if (!isObject(def['properties']) || !('metadata' in def['properties'])) continue;

    // Copy in the transitive closure of referenced definitions, so each file stands alone.
    const refs = new Set<string>();
    const root = rewrite(def, refs);
    if (!isObject(root)) continue;
    const closure: JsonObject = {};
    const pending = [...refs];
    for (let ref = pending.pop(); ref !== undefined; ref = pending.pop()) {
      if (ref in closure) continue;
      const more = new Set<string>();
      closure[ref] = rewrite(definitionFor(ref, definitions), more);
      for (const m of more) if (!(m in closure)) pending.push(m);
    }
    // kubeconform's {{ .Group }} is the part of apiVersion before "/", i.e. the version itself for core.
    const groupDir = group === '' ? version : group;
    out.push({
      path: join(groupDir, version, `${kind.toLowerCase()}.json`),
      schema: { $schema: 'http://json-schema.org/draft-07/schema#', ...root, definitions: closure },
    });
  }
  return out;
}

function main(argv: string[]): number {
  const [swaggerPath, outDir] = argv;
  if (swaggerPath === undefined || outDir === undefined) {
    process.stderr.write('usage: k8s-schemas SWAGGER_JSON OUT_DIR\n');
    return 2;
  }
  const swagger = JSON.parse(readFileSync(swaggerPath, 'utf8')) as Json;
  if (!isObject(swagger)) throw new Error(`${swaggerPath}: not a JSON object`);
  const schemas = kindSchemas(swagger);
  for (const { path, schema } of schemas) {
    const file = join(outDir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(schema));
  }
  process.stdout.write(`k8s-schemas: wrote ${schemas.length} kind schemas to ${outDir}\n`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
