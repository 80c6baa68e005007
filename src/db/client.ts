import type pg from 'pg';

/**
 * Runs `fn` with a client of the pool. A checked-out client whose server goes away emits 'error'
 * (which, unheard, would end the process): here it is heard, the running query fails as it would
 * anyway, and the broken client is thrown away instead of going back to the pool.
 */
export async function withClient<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => void (broken = err);
  c.on('error', onError);
  try {
    return await fn(c);
  } finally {
    c.off('error', onError);
    c.release(broken);
  }
}
