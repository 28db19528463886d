import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import { COLLECTIONS, getMongoClient } from '../data/mongo.js';
import type { DataSourceDoc } from '../data/documents.js';
import { AppError, BadRequestError } from '../platform/errors.js';

export function encryptUri(key: Buffer, uri: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(uri, 'utf8'), cipher.final()]);
  return `v1:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
}

export function decryptUri(key: Buffer, stored: string): string {
  if (!stored.startsWith('v1:')) throw new AppError('data_source_corrupt', 'data source connection string is not in the v1 format');
  const raw = Buffer.from(stored.slice(3), 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  try {
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch (error) {
    throw new AppError('data_source_corrupt', 'data source connection string cannot be decrypted with DATA_SOURCE_KEY', { cause: error });
  }
}

function requireKey(key: Buffer | undefined): Buffer {
  if (!key) throw new AppError('not_configured', 'DATA_SOURCE_KEY is required for external data sources');
  return key;
}

export function dataSources(db: Db): Collection<DataSourceDoc> {
  return db.collection<DataSourceDoc>(COLLECTIONS.dataSources);
}

/** Register or replace an organization's external source (operator action). */
export async function upsertDataSource(
  db: Db,
  key: Buffer | undefined,
  input: { organizationId: string; uri: string; db: string; collection: string },
  now: Date,
): Promise<void> {
  if (!/^mongodb(\+srv)?:\/\//.test(input.uri)) throw new BadRequestError('uri must be a mongodb:// or mongodb+srv:// connection string');
  await dataSources(db).updateOne(
    { organizationId: input.organizationId },
    { $set: { uri: encryptUri(requireKey(key), input.uri), db: input.db, collection: input.collection }, $setOnInsert: { createdAt: now } },
    { upsert: true },
  );
}

/** The collection an external source's submissions live in, through one cached client per source. */
export async function openDataSource(db: Db, key: Buffer | undefined, organizationId: string): Promise<Collection> {
  const source = await dataSources(db).findOne({ organizationId });
  if (!source) throw new AppError('data_source_missing', `no data source registered for organization ${organizationId}`);
  const client = await getMongoClient(decryptUri(requireKey(key), source.uri));
  return client.db(source.db).collection(source.collection);
}
