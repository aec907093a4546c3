/**
 * `GET /metrics` on the API port, for Prometheus. Behind the API's bearer tokens (any role): the API
 * port faces devices and browsers. Prometheus sends one with `authorization: {credentials: <token>}`
 * in its scrape config; or scrape the token-less `METRICS_PORT` listener on an internal network.
 */
import type { Express } from 'express';
import type { ApiGuards } from '../api/deps.js';
import { renderMetrics, type Registry } from './metrics-registry.js';

export const METRICS_PATH = '/metrics';

export function mountMetricsRoute(app: Express, guards: ApiGuards, registry: Registry): void {
  app.get(METRICS_PATH, guards.authenticate, guards.requireRole('viewer'), async (_req, res) => {
    const { contentType, body } = await renderMetrics(registry);
    res.setHeader('Cache-Control', 'no-store');
    res.type(contentType).send(body);
  });
}
