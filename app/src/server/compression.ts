import type { PerMessageDeflateOptions } from 'ws';
import type { CompressionMode } from '../topology';

/**
 * permessage-deflate settings chosen for memory per connection (see docs/compression.md):
 * no context takeover on either side, so no sliding window is kept between messages; small
 * windows (2^10) and memLevel 4 shrink what each zlib stream allocates; level 2 as in the seed;
 * small messages (under the threshold) are sent uncompressed, where deflate costs more than it saves.
 */
export const DEFLATE_OPTIONS: PerMessageDeflateOptions = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 10,
  clientMaxWindowBits: 10,
  zlibDeflateOptions: { level: 2, memLevel: 4 },
  threshold: 256,
  concurrencyLimit: 10,
};

export function deflateFor(mode: CompressionMode): PerMessageDeflateOptions | false {
  return mode === 'off' ? false : DEFLATE_OPTIONS;
}
