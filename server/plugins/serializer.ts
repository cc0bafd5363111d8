// How answers are serialised: fast-json-stringify (Fastify's own), from each route's response schema, with two changes
// made for the main thread's sake (issue 10: reads for the API must not block the alarm path).
//
// - **Unions it can write without a validator.** A union in a response schema (`anyOf`) is written by asking Ajv which
//   branch the value matches, on every value, and Ajv compiles each branch the first time it is asked. The first
//   device page on a fresh gateway held the event loop 60-90 ms that way (a profile: 53 ms in Ajv's compileSchema,
//   under fast-json-stringify's getSchemaValidator), with every MQTT socket waiting, and later pages paid a validation
//   per nullable field. Most of our unions need no such choice: "X or null" is written as X marked `nullable` (a null
//   test), and a choice between string constants (a device's kind or state) is a string. The route's schema is not
//   changed: request validation and the API document still see the union; only the serialiser's copy is rewritten.
// - **What is left compiled before the server listens** (`compileValidators`): a union of objects (a safe zone is a
//   circle or a polygon) still needs Ajv; its validators are compiled while the routes are built, not on first use.
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';

type Schema = Record<string, unknown>;

const isObject = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const COMBINERS = ['anyOf', 'oneOf', 'allOf', '$ref', 'if', 'not'];
/** a schema that is one plain type: no union, reference or condition of its own (a nullable copy writes it alone) */
const isPlain = (s: Schema) => typeof s.type === 'string' && s.type !== 'null' && COMBINERS.every((k) => !(k in s));

/**
 * A copy of `schema` for the serialiser, unions rewritten where they need no choice (see above). The string keys of
 * every object are copied (TypeBox's symbol keys are not: fast-json-stringify does not read them); `schema` itself is
 * not changed.
 */
export function forSerialising(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(forSerialising);
  if (!isObject(schema)) return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) {
    // a property or definition named like a keyword is data, not a schema keyword: the maps are copied key by key
    if (isSchemaMap(k) && isObject(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([name, s]) => [name, forSerialising(s)]));
    } else {
      out[k] = forSerialising(v);
    }
  }
  const key = Array.isArray(out.anyOf) ? 'anyOf' : Array.isArray(out.oneOf) ? 'oneOf' : null;
  if (!key) return out;
  // a union of a union and more (a safe zone or null): one union of all their options (fast-json-stringify writes
  // oneOf as anyOf: the first option that matches)
  const options = (out[key] as Schema[]).flatMap((o) => (isObject(o) && Array.isArray(o.anyOf) && Object.keys(o).length === 1 ? o.anyOf as Schema[] : [o]));
  const nonNull = options.filter((o) => !(isObject(o) && o.type === 'null' && Object.keys(o).length === 1));
  const nullable = nonNull.length < options.length;
  const { [key]: _union, ...siblings } = out;
  // a union beside another combinator (anyOf with oneOf, allOf, $ref…) is left as it is
  if (COMBINERS.some((k) => k in siblings)) return out;
  // X or null: X, nullable (a null test instead of a validation)
  if (nonNull.length === 1 && isObject(nonNull[0]) && isPlain(nonNull[0]) && !('nullable' in siblings)) {
    return { ...siblings, ...nonNull[0], nullable: true };
  }
  // string constants (or null): a string; which one is the value's own business, already typed where it was made
  if (nonNull.length > 0 && nonNull.every((o) => isObject(o) && typeof o.const === 'string' && Object.keys(o).every((k) => k === 'const' || k === 'type'))) {
    return { ...siblings, type: 'string', ...(nullable ? { nullable: true } : {}) };
  }
  return { ...siblings, [key]: options };
}

/** the keys whose value is a map of names to schemas, not a schema */
export const isSchemaMap = (k: string) => k === 'properties' || k === 'patternProperties' || k === 'definitions' || k === '$defs';

type BuildSerializer = (externalSchemas: unknown, serializerOpts: unknown) => (route: { schema: unknown; method: string; url: string; httpStatus: string }) => (data: unknown) => string;

/**
 * The serialiser factory for `schemaController.compilersFactory.buildSerializer`: Fastify's own (fast-json-stringify),
 * given each response schema rewritten by `forSerialising`, with the validators of what unions are left compiled at
 * once (while the routes are built, before the server listens).
 */
export const buildSerializer: BuildSerializer = (externalSchemas, serializerOpts) => {
  const build = (SerializerSelector() as unknown as BuildSerializer)(externalSchemas, { ...(serializerOpts as object), compileValidators: true });
  return (route) => build({ ...route, schema: forSerialising(route.schema) });
};
