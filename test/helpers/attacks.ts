/** Hostile inputs shared by the tests and the benches (one definition each). */

/**
 * Issue 18: a dozen names assigned from each other's attributes in a never-called function made the
 * checker's alias analysis grow without bound (the shared checker container OOM-killed). A valid 2 KB file.
 */
export function aliasBomb(): string {
  const names = 'abcdefghijkl';
  const lines = ['import os', '', '', 'def never():', '    a = os'];
  for (let i = 0; i < names.length; i++) {
    for (let j = 0; j < 3; j++) lines.push(`    ${names[i]} = ${names[(i * 5 + j * 7 + 1) % 12]}.${'xyz'[j]}.${'uvw'[(i + j) % 3]}`);
  }
  return [...lines, '    return a', '', '', 'async def handler(payload):', '    return {"ok": True}', ''].join('\n');
}
