/**
 * Small arrays carved from Node's shared buffer pool, as plain typed arrays:
 * no backing store of their own for the garbage collector to sweep. The
 * media path makes thousands a second (a packet per call per 20 ms each
 * way); with a backing store each, young-generation collections at 1,000
 * calls took up to 8 ms and held up the 20 ms clock. Not zeroed: callers
 * write every element. The pool's slices are 8-byte aligned.
 */
export function pooledBytes(n: number): Uint8Array {
  const pooled = Buffer.allocUnsafe(n);
  return new Uint8Array(pooled.buffer, pooled.byteOffset, n);
}

export function pooledInt16(n: number): Int16Array {
  const pooled = Buffer.allocUnsafe(n * 2);
  return new Int16Array(pooled.buffer, pooled.byteOffset, n);
}
