/**
 * The OpenAPI 3.1 document of the REST API, generated from the zod schemas the routes validate with
 * (`z.toJSONSchema`, JSON Schema 2020-12, which OpenAPI 3.1 uses as is). Request schemas are the
 * *input* side (what a client sends: query numbers are strings), hence `io: 'input'`.
 */
import { z } from 'zod';
import { apiRoutes, type JsonSchema, type RouteDoc } from './openapi-routes.js';
import { errorResponseSchema, type SchemaLimits } from './schemas.js';

const ERROR_TEXT: Record<number, string> = {
  400: 'Invalid input (`validation_failed` with `details.issues`, `invalid_json`, …)',
  401: 'Missing or invalid credentials (`unauthorized`)',
  403: 'The role or token does not allow this (`forbidden`)',
  404: 'Unknown resource (`<what>_not_found`, `not_found`)',
  409: 'Conflict (`firmware_exists`, `firmware_in_use`, `job_finished`, `past_point_of_no_return`, …)',
  413: 'Body too large (`payload_too_large`)',
  415: 'Wrong Content-Type (`unsupported_media_type`)',
  416: 'Range not satisfiable (`range_not_satisfiable`)',
  422: 'No device left to update (`incompatible_product`, `not_newer`), or a filter matching none or too many (`no_matching_devices`, `too_many_devices`)',
  429: 'Too many failed authentication attempts from this address (`rate_limited`)',
  503: 'Not available on this instance',
};

/** JSON Schema of a zod schema (its input side), of several as `oneOf`, or a plain JSON Schema as is. */
function schemaOf(s: z.ZodType | z.ZodType[] | JsonSchema): JsonSchema {
  if (Array.isArray(s)) return { oneOf: s.map(schemaOf) };
  if (!(s instanceof z.ZodType)) return s;
  // `unrepresentable: 'any'`: refinements (device ids, versions) have no JSON Schema form; their
  // descriptions say what they check.
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, {
    io: 'input',
    unrepresentable: 'any',
  }) as JsonSchema;
  return rest;
}

function parametersOf(where: 'path' | 'query', schema: z.ZodObject | undefined): JsonSchema[] {
  if (!schema) return [];
  const js = schemaOf(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s;
    return {
      name,
      in: where,
      required: where === 'path' || (js.required ?? []).includes(name),
      schema: rest,
      ...(description ? { description } : {}),
    };
  });
}

function operationOf(r: RouteDoc): JsonSchema {
  const errors = new Set(r.errors);
  if (r.access === 'viewer' || r.access === 'operator') [401, 429].forEach((s) => errors.add(s));
  if (r.access === 'operator') errors.add(403);
  if (r.access === 'download-token') [401, 403].forEach((s) => errors.add(s));
  const responses: Record<string, JsonSchema> = {};
  for (const [status, ok] of Object.entries(r.ok)) {
    const media = r.path.startsWith('/firmware/') ? 'application/octet-stream' : 'application/json';
    responses[status] = {
      description: ok.description,
      ...(ok.schema ? { content: { [media]: { schema: ok.schema } } } : {}),
    };
  }
  for (const status of [...errors].sort((a, b) => a - b)) {
    responses[String(status)] = {
      description: ERROR_TEXT[status] ?? 'Error',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  return {
    summary: r.summary,
    ...(r.access === 'viewer' || r.access === 'operator'
      ? { security: [{ bearer: [] }], 'x-required-role': r.access }
      : { security: [] }),
    parameters: [...parametersOf('path', r.params), ...parametersOf('query', r.query)],
    ...(r.body
      ? {
          requestBody: {
            required: r.body.required ?? true,
            content: { [r.body.contentType]: { schema: schemaOf(r.body.schema) } },
          },
        }
      : {}),
    responses,
  };
}

/** Builds the document; `limits` are the configured ones, so the schema states this deployment's maxima. */
export function buildOpenApi(limits: SchemaLimits): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const r of apiRoutes(limits)) {
    paths[r.path] ??= {};
    paths[r.path][r.method] = operationOf(r);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'fleetflash',
      version: '1',
      description:
        'Firmware updates for fleets of MQTT-connected Victron GX devices. Errors are always `{"error": {"code", "message", "details"?}}`.',
    },
    paths,
    components: {
      schemas: { Error: schemaOf(errorResponseSchema) },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An operator token from API_TOKENS' },
      },
    },
  };
}
