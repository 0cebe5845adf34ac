/**
 * Request validation and response serialization for the relay's routes, from their JSON schemas,
 * without ajv or fast-json-stringify: the relay's schemas use a small subset of JSON Schema
 * (object with properties / required / additionalProperties: false; string with enum, pattern,
 * minLength, maxLength; integer with minimum, maximum; boolean; a type list such as
 * ['string', 'null']), and compiling them with ajv cost the idle relay about 7 MiB of resident
 * memory. A schema keyword outside that subset is refused when the route is built, so a schema
 * can never be silently half-checked. Errors follow ajv's shape ({ instancePath, message }), which
 * fastify turns into a 400 with `validation` set.
 */

export interface Schema {
  type?: string | readonly string[];
  properties?: Readonly<Record<string, Schema>>;
  required?: readonly string[];
  additionalProperties?: boolean;
  enum?: readonly unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
}

export interface SchemaError {
  instancePath: string;
  message: string;
}

const KEYWORDS = new Set(['type', 'properties', 'required', 'additionalProperties', 'enum', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum']);
const TYPES = new Set(['object', 'string', 'integer', 'boolean', 'null']);

/** Throw if `schema` uses anything this module does not check. */
function assertSupported(schema: Schema, path: string): void {
  for (const k of Object.keys(schema)) if (!KEYWORDS.has(k)) throw new TypeError(`schema keyword "${k}" at ${path || '/'} is not supported`);
  const types = schema.type === undefined ? [] : typeof schema.type === 'string' ? [schema.type] : schema.type;
  for (const t of types) if (!TYPES.has(t)) throw new TypeError(`schema type "${t}" at ${path || '/'} is not supported`);
  if (schema.additionalProperties === true) throw new TypeError(`additionalProperties: true at ${path || '/'} is not supported`);
  for (const [name, sub] of Object.entries(schema.properties ?? {})) assertSupported(sub, `${path}/${name}`);
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** A validator for `schema`: the errors of `value` (empty when it conforms). */
export function compileValidator(schema: Schema): (value: unknown) => SchemaError[] {
  assertSupported(schema, '');
  const patterns = new Map<Schema, RegExp>();
  const regex = (s: Schema): RegExp => {
    let re = patterns.get(s);
    if (re === undefined) patterns.set(s, (re = new RegExp(s.pattern!, 'u')));
    return re;
  };
  for (const s of [schema, ...Object.values(schema.properties ?? {})]) if (s.pattern !== undefined) regex(s);

  const check = (s: Schema, v: unknown, path: string, errors: SchemaError[]): void => {
    const t = typeOf(v);
    if (s.type !== undefined) {
      const allowed = typeof s.type === 'string' ? [s.type] : s.type;
      if (!allowed.includes(t)) {
        errors.push({ instancePath: path, message: `must be ${allowed.join(',')}` });
        return;
      }
    }
    if (s.enum !== undefined && !s.enum.includes(v)) errors.push({ instancePath: path, message: 'must be equal to one of the allowed values' });
    if (typeof v === 'string') {
      const len = s.minLength !== undefined || s.maxLength !== undefined ? [...v].length : 0;
      if (s.minLength !== undefined && len < s.minLength) errors.push({ instancePath: path, message: `must NOT have fewer than ${s.minLength} characters` });
      if (s.maxLength !== undefined && len > s.maxLength) errors.push({ instancePath: path, message: `must NOT have more than ${s.maxLength} characters` });
      if (s.pattern !== undefined && !regex(s).test(v)) errors.push({ instancePath: path, message: `must match pattern "${s.pattern}"` });
    }
    if (typeof v === 'number') {
      if (s.minimum !== undefined && v < s.minimum) errors.push({ instancePath: path, message: `must be >= ${s.minimum}` });
      if (s.maximum !== undefined && v > s.maximum) errors.push({ instancePath: path, message: `must be <= ${s.maximum}` });
    }
    if (t === 'object' && (s.properties !== undefined || s.required !== undefined)) {
      const o = v as Record<string, unknown>;
      const props = s.properties ?? {};
      for (const name of s.required ?? [])
        if (!Object.hasOwn(o, name)) errors.push({ instancePath: path, message: `must have required property '${name}'` });
      for (const name of Object.keys(o)) {
        const sub = Object.hasOwn(props, name) ? props[name] : undefined;
        if (sub === undefined) {
          if (s.additionalProperties === false) errors.push({ instancePath: path, message: 'must NOT have additional properties' });
        } else check(sub, o[name], `${path}/${name}`, errors);
      }
    }
  };
  return (value) => {
    const errors: SchemaError[] = [];
    check(schema, value, '', errors);
    return errors;
  };
}

/** A serializer for `schema`: JSON of `value` keeping only the properties the schema lists (recursively). */
export function compileSerializer(schema: Schema): (value: unknown) => string {
  assertSupported(schema, '');
  const pick = (s: Schema, v: unknown): unknown => {
    if (s.properties === undefined || typeOf(v) !== 'object') return v;
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [name, sub] of Object.entries(s.properties)) if (Object.hasOwn(o, name) && o[name] !== undefined) out[name] = pick(sub, o[name]);
    return out;
  };
  return (value) => JSON.stringify(pick(schema, value));
}
