/**
 * torch.save checkpoints (the zip format since torch 1.6): `<archive>/data.pkl` pickles the object, each
 * tensor's storage is a member `<archive>/data/<key>` referenced through a persistent id, and
 * `<archive>/byteorder` says how storages are laid out. yauzl reads only the central directory (zip64
 * included); storages are read lazily and uncompressed (torch never compresses them; a compressed member
 * is refused) straight from the file at the offset its local header gives, so reading one tensor holds
 * only that tensor plus a bounded window in memory.
 *
 * The pickle runs through the torch table of lib/tensors/torch-pickle.ts (shared with the legacy format's
 * reader): globals outside it are refused only inside the entry the caller asks for.
 */
import type { FileHandle } from 'node:fs/promises';
import yauzl from 'yauzl';
import { BadInputError } from '../errors.js';
import type { CheckpointSource, OpenOptions, TensorRef } from '../weights/source.js';
import { openForReading, readFully } from './files.js';
import { PickleMachine } from './pickle.js';
import { SOURCE_ITEMSIZE } from './source-dtypes.js';
import { TORCH_TABLE, TorchTensor, extentBytes, torchEntry } from './torch-pickle.js';
import type { TorchNative } from './torch-pickle.js';

interface Member {
  name: string;
  compressionMethod: number;
  size: number;
  localHeader: number;
}

/** Members by name; names that could escape the archive are refused. */
async function listMembers(path: string): Promise<Map<string, Member>> {
  let zip: yauzl.ZipFile;
  try {
    // Names are checked here (decodeStrings off) so the error can say which member is wrong.
    zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false, decodeStrings: false });
  } catch (e) {
    throw new BadInputError(`${path}: not a readable torch.save zip archive (${(e as Error).message})`);
  }
  try {
    const members = new Map<string, Member>();
    for await (const entry of zip.eachEntry()) {
      const name = Buffer.from(entry.fileNameRaw).toString('utf8');
      if (
        name.startsWith('/') ||
        /^[a-zA-Z]:/.test(name) ||
        name.includes('\\') ||
        name.split('/').includes('..')
      )
        throw new BadInputError(
          `${path}: zip member '${name}' is not a plain relative path (absolute or '..')`,
        );
      if (entry.isEncrypted()) throw new BadInputError(`${path}: zip member '${name}' is encrypted`);
      members.set(name, {
        name,
        compressionMethod: entry.compressionMethod,
        size: entry.uncompressedSize,
        localHeader: entry.relativeOffsetOfLocalHeader,
      });
    }
    return members;
  } catch (e) {
    if (e instanceof BadInputError) throw e;
    throw new BadInputError(`${path}: corrupt zip directory (${(e as Error).message})`);
  } finally {
    zip.close();
  }
}

/** Where a stored member's bytes start: after its local header's name and extra field. */
async function dataOffset(fh: FileHandle, path: string, m: Member): Promise<number> {
  if (m.compressionMethod !== 0)
    throw new BadInputError(
      `${path}: zip member '${m.name}' is compressed (method ${m.compressionMethod}); torch.save stores members uncompressed`,
    );
  const header = new Uint8Array(30);
  const got = await readFully(fh, header, m.localHeader);
  const dv = new DataView(header.buffer);
  if (got !== 30 || dv.getUint32(0, true) !== 0x04034b50)
    throw new BadInputError(`${path}: zip member '${m.name}' has no local file header`);
  return m.localHeader + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
}

async function readMember(fh: FileHandle, path: string, m: Member): Promise<Uint8Array> {
  const out = new Uint8Array(m.size);
  if ((await readFully(fh, out, await dataOffset(fh, path, m))) !== m.size)
    throw new BadInputError(`${path}: zip member '${m.name}' is truncated`);
  return out;
}

/** Opens a torch.save zip checkpoint; see OpenOptions.entry for which object supplies the tensors. */
export async function openTorchZip(path: string, opts: OpenOptions = {}): Promise<CheckpointSource> {
  const members = await listMembers(path);
  const pkls = [...members.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1)
    throw new BadInputError(
      `${path}: not a torch.save archive (expected one <name>/data.pkl, found ${pkls.length})`,
    );
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  const fh = await openForReading(path);
  try {
    let bigEndian = false;
    const order = members.get(`${prefix}byteorder`);
    if (order) {
      const text = new TextDecoder().decode(await readMember(fh, path, order)).trim();
      if (text !== 'little' && text !== 'big')
        throw new BadInputError(`${path}: unknown byteorder '${text}'`);
      bigEndian = text === 'big';
    }
    const source = `${path}: member '${pkls[0]}'`;
    const root = new PickleMachine<TorchNative>(
      await readMember(fh, path, members.get(pkls[0]!)!),
      source,
      TORCH_TABLE,
    ).run();
    const { tensors: views, extras } = torchEntry(root, path, source, opts);
    const tensors = new Map<string, TensorRef>();
    const starts = new Map<string, number>();
    for (const [name, view] of views) {
      const what = `${path}: tensor '${name}'`;
      const member = members.get(`${prefix}data/${view.storage.key}`);
      if (!member)
        throw new BadInputError(`${what}: storage member '${prefix}data/${view.storage.key}' is missing`);
      const need = extentBytes(view, SOURCE_ITEMSIZE[view.storage.dtype]);
      if (need > member.size)
        throw new BadInputError(
          `${what}: truncated storage '${member.name}' (${member.size} bytes; the tensor reaches byte ${need})`,
        );
      let start = starts.get(member.name);
      if (start === undefined) {
        start = await dataOffset(fh, path, member);
        starts.set(member.name, start);
      }
      tensors.set(name, new TorchTensor(name, view, fh, start, bigEndian, what));
    }
    return { path, format: 'torch-zip', tensors, extras, close: () => fh.close() };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
