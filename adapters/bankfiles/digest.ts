/**
 * Digests of a package file's exact bytes, computed while the bytes stream past: SHA-256 (for
 * `Repr-Digest`, RFC 9530, and the manifest) and SM3 (GB/T 32905, which Chinese banks check).
 * Hashing in the same pass as writing is what lets a file of tens of millions of lines be
 * published without reading it back.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface FileDigest {
  readonly bytes: number;
  readonly sha256Hex: string;
  readonly sm3Hex: string;
}

/** Incremental digests; feed it every chunk in order, then `finish()` exactly once. */
export class StreamDigest {
  readonly #sha256: Hash = createHash('sha256');
  readonly #sm3: Hash = createHash('sm3');
  #bytes = 0;
  #finished: FileDigest | undefined;

  update(chunk: Uint8Array): void {
    if (this.#finished !== undefined) throw new Error('StreamDigest.update after finish');
    this.#sha256.update(chunk);
    this.#sm3.update(chunk);
    this.#bytes += chunk.byteLength;
  }

  /** Idempotent: a second call returns the same result. */
  finish(): FileDigest {
    this.#finished ??= {
      bytes: this.#bytes,
      sha256Hex: this.#sha256.digest('hex'),
      sm3Hex: this.#sm3.digest('hex'),
    };
    return this.#finished;
  }
}

/**
 * A pass-through stream that digests everything written through it. Put it in a
 * `pipeline(source, digest, destination)`; `result()` is available once the source has ended.
 */
export class DigestPassThrough extends Transform {
  readonly #digest = new StreamDigest();
  #ended = false;

  constructor() {
    // Byte mode: objects or strings with another encoding would change what is hashed.
    super({ decodeStrings: true, objectMode: false });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#digest.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#ended = true;
    this.#digest.finish();
    callback();
  }

  result(): FileDigest {
    if (!this.#ended) throw new Error('DigestPassThrough.result before the stream ended');
    return this.#digest.finish();
  }
}

/** Digests of bytes already in memory (the XML files and the manifest are small). */
export function digestOf(content: string | Uint8Array): FileDigest {
  const digest = new StreamDigest();
  digest.update(typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
  return digest.finish();
}

/** `Repr-Digest` field value for a SHA-256 (RFC 9530 §3, structured-field byte sequence). */
export function reprDigestHeader(sha256: Uint8Array): string {
  if (sha256.byteLength !== 32) throw new Error('reprDigestHeader expects a 32-byte SHA-256 digest');
  return `sha-256=:${Buffer.from(sha256.buffer, sha256.byteOffset, sha256.byteLength).toString('base64')}:`;
}
