import type { Config, RolloutMode } from '../platform/config.js';

/**
 * The rollout: which organizations are on change streams, and in which mode (README "Rollout").
 * Read from configuration only, so every path (drain, explicit call, reconcile, status) agrees.
 */

/**
 * The rollout mode that applies to one organization: `explicit` unless change streams are on and the
 * organization is allowed (allow-list, or `CHANGE_STREAMS_ALL_ORGS=true`), then its override or `TRIGGER_MODE`.
 */
export function rolloutModeFor(cfg: Config, orgId: string): RolloutMode {
  if (!cfg.USE_CHANGE_STREAMS) return 'explicit';
  const allowed = cfg.CHANGE_STREAMS_ALL_ORGS || (cfg.CHANGE_STREAMS_ORG_IDS ?? []).includes(orgId);
  if (!allowed) return 'explicit';
  return cfg.TRIGGER_MODE_BY_ORG?.[orgId] ?? cfg.TRIGGER_MODE;
}
