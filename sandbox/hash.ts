import crypto from 'node:crypto';

/** Hex sha256: how TaskFlow names file versions and image inputs. */
export const sha256Hex = (data: Buffer | string): string => crypto.createHash('sha256').update(data).digest('hex');
