/**
 * Connections to Temporal from the settings (embedded dev server, a cluster with mTLS, or Temporal Cloud
 * with an API key). A server that does not answer gives an error naming its address.
 */
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import { readFileSync } from 'node:fs';
import type { TemporalSettings } from '../lib/config/infra.js';
import { ServerUnreachableError, errorMessage } from '../lib/errors.js';

function tlsOptions(s: TemporalSettings): ConnectionOptions['tls'] {
  if (!s.tls) return undefined;
  const { clientCertPath, clientKeyPath, serverCaCertPath, serverName } = s.tls;
  return {
    ...(serverName ? { serverNameOverride: serverName } : {}),
    ...(serverCaCertPath ? { serverRootCACertificate: readFileSync(serverCaCertPath) } : {}),
    ...(clientCertPath && clientKeyPath
      ? { clientCertPair: { crt: readFileSync(clientCertPath), key: readFileSync(clientKeyPath) } }
      : {}),
  };
}

function unreachable(s: TemporalSettings, err: unknown): ServerUnreachableError {
  return new ServerUnreachableError(`Temporal at ${s.address} did not answer: ${errorMessage(err)}`);
}

function connectionOptions(s: TemporalSettings, connectTimeoutMs: number): ConnectionOptions {
  return {
    address: s.address,
    tls: tlsOptions(s),
    ...(s.apiKey ? { apiKey: s.apiKey } : {}),
    connectTimeout: connectTimeoutMs,
  };
}

export async function connectClient(s: TemporalSettings, connectTimeoutMs = 10_000): Promise<Client> {
  try {
    const connection = await Connection.connect(connectionOptions(s, connectTimeoutMs));
    return new Client({ connection, namespace: s.namespace });
  } catch (err) {
    throw unreachable(s, err);
  }
}

export async function connectWorker(s: TemporalSettings): Promise<NativeConnection> {
  try {
    const options: NativeConnectionOptions = {
      address: s.address,
      tls: tlsOptions(s),
      ...(s.apiKey ? { apiKey: s.apiKey } : {}),
    };
    return await NativeConnection.connect(options);
  } catch (err) {
    throw unreachable(s, err);
  }
}

/** Succeeds when the frontend answers its health check. */
export async function probeTemporal(s: TemporalSettings, timeoutMs = 3000): Promise<void> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect(connectionOptions(s, timeoutMs));
    await connection.healthService.check({});
  } catch (err) {
    throw unreachable(s, err);
  } finally {
    await connection?.close();
  }
}
