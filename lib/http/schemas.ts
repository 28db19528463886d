import { z } from 'zod';

/** Request-body building blocks shared by the routes, so one field means one rule everywhere. */

/**
 * An identifier in a request body (organization, stream, workflow, job key, run id): trimmed,
 * 1–200 characters. Leading and trailing spaces are dropped before the length is checked.
 */
export const idSchema = z.string().trim().min(1, 'must not be empty').max(200, 'at most 200 characters');

/** An ISO 8601 time with an explicit zone (`Z` or `±hh:mm`), kept as the string that was sent. */
export const isoTimeSchema = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 time with a zone, e.g. 2025-01-31T12:00:00Z' });
