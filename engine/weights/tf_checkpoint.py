"""Read and write TensorFlow 1 ``tf.train.Saver`` checkpoints (the "tensor bundle" format) without
TensorFlow or the protobuf package.

A checkpoint ``PREFIX`` is two files:

- ``PREFIX.index``: a LevelDB-format table (SSTable). Keys are variable names; the empty key holds
  a ``BundleHeaderProto`` (num_shards, endianness, version) and every other value a
  ``BundleEntryProto`` (dtype, shape, shard_id, offset, size, crc32c of the bytes). Like every CRC
  TensorFlow stores, the entry's crc32c is *masked* (``crc32c::Mask``: rotated right by 15 bits, plus
  0xa282ead8), so a CRC of data that itself holds CRCs does not degenerate.
- ``PREFIX.data-00000-of-0000N``: the raw little-endian tensor bytes the entries point into.

Table layout (LevelDB ``table_format``): data blocks, a meta-index block, an index block (one entry
per data block: a key ≥ every key of the block -> BlockHandle(offset, size)), and a 48-byte footer
(two BlockHandles padded to 40 bytes + the magic 0xdb4775248b80fb57). A block is a run of
prefix-compressed entries (varint shared, varint unshared, varint value length, key suffix, value),
then the restart offsets (uint32 each) and their count; it is followed by a 5-byte trailer
(compression type, masked crc32c). Protobufs are decoded by hand (varints and wire types).
"""
from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..limits import MAX_CHECKPOINT_BYTES, MAX_INDEX_BYTES, MAX_TENSOR_BYTES
from ..requests.base import WeightsError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5
RESTART_INTERVAL = 16
BLOCK_SIZE = 4096

# TensorFlow DataType enum -> numpy dtype (string, resource and variant tensors are not supported).
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
DT_BFLOAT16 = 14
_NP_TO_TF = {v: k for k, v in TF_DTYPES.items()}


# ---------------------------------------------------------------------------------------------
# crc32c (Castagnoli), vectorised over chunks with numpy and combined in GF(2)
# ---------------------------------------------------------------------------------------------
def _make_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _make_table()
_CRC_TABLE_LIST = [int(v) for v in _CRC_TABLE]


def _crc32c_small(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    t = _CRC_TABLE_LIST
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def _zeros_operator(nbytes: int) -> list[int]:
    """The linear map on the CRC register of appending ``nbytes`` zero bytes (zlib's crc32_combine)."""
    odd = [0x82F63B78] + [1 << (n - 1) for n in range(1, 32)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    result = [1 << n for n in range(32)]  # identity
    n = nbytes
    while n:
        even = _gf2_square(odd)  # first pass: one zero byte
        if n & 1:
            result = [_gf2_times(even, c) for c in result]
        n >>= 1
        if not n:
            break
        odd = _gf2_square(even)
        if n & 1:
            result = [_gf2_times(odd, c) for c in result]
        n >>= 1
    return result


def crc32c(data: bytes | memoryview) -> int:
    """CRC-32C of ``data``. Large inputs are split into equal chunks whose CRCs are computed in
    parallel with numpy and then combined (crc(AB) = Z_len(B)(crc(A)) ^ crc(B))."""
    data = bytes(data)
    n = len(data)
    if n < 1 << 16:
        return _crc32c_small(data)
    chunk = 1 << max(12, (int(np.log2(n)) + 1) // 2)
    m = n // chunk
    arr = np.frombuffer(data, np.uint8, count=m * chunk).reshape(m, chunk)
    crc = np.full(m, 0xFFFFFFFF, np.uint32)
    for j in range(chunk):
        crc = _CRC_TABLE[(crc ^ arr[:, j]) & 0xFF] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    op = _zeros_operator(chunk)
    total = int(crc[0])
    for c in crc[1:]:
        total = _gf2_times(op, total) ^ int(c)
    tail = data[m * chunk:]
    if tail:
        total = _gf2_times(_zeros_operator(len(tail)), total) ^ _crc32c_small(tail)
    return total


def masked_crc32c(data: bytes | memoryview) -> int:
    """TensorFlow's / LevelDB's ``crc32c::Mask(crc32c(data))``: what tensor bundles and table blocks store."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def unmask_crc32c(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# varints and protobuf wire format
# ---------------------------------------------------------------------------------------------
def encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negative numbers are 10-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise WeightsError("truncated varint in TF checkpoint index")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WeightsError("malformed varint in TF checkpoint index")


def parse_proto(buf: bytes) -> dict[int, list]:
    """A protobuf message -> {field number: [values]} (varints as int, fixed as int, bytes as bytes)."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = decode_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise WeightsError("TF checkpoint index: a protobuf field ends early (truncated record)")
            val = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = decode_varint(buf, pos)
            if pos + length > len(buf):
                raise WeightsError("TF checkpoint index: a protobuf field ends early (truncated record)")
            val = bytes(buf[pos:pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise WeightsError("TF checkpoint index: a protobuf field ends early (truncated record)")
            val = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise WeightsError(f"unsupported protobuf wire type {wire} in TF checkpoint index")
        fields.setdefault(num, []).append(val)
    return fields


def _field_varint(num: int, value: int) -> bytes:
    return encode_varint(num << 3) + encode_varint(value)


def _field_bytes(num: int, value: bytes) -> bytes:
    return encode_varint((num << 3) | 2) + encode_varint(len(value)) + value


def _field_fixed32(num: int, value: int) -> bytes:
    return encode_varint((num << 3) | 5) + struct.pack("<I", value)


@dataclass(frozen=True)
class BundleEntry:
    """A decoded ``BundleEntryProto``."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool = False


def decode_entry(value: bytes) -> BundleEntry:
    f = parse_proto(value)
    shape: list[int] = []
    for shape_msg in f.get(2, []):
        for dim in parse_proto(shape_msg).get(2, []):
            size = parse_proto(dim).get(1, [0])[0]
            shape.append(size - (1 << 64) if size >= 1 << 63 else size)
    return BundleEntry(dtype=f.get(1, [0])[0], shape=tuple(shape), shard_id=f.get(3, [0])[0],
                       offset=f.get(4, [0])[0], size=f.get(5, [0])[0], crc32c=f.get(6, [None])[0],
                       sliced=bool(f.get(7)))


def encode_entry(e: BundleEntry) -> bytes:
    dims = b"".join(_field_bytes(2, _field_varint(1, d)) for d in e.shape)
    out = _field_varint(1, e.dtype) + _field_bytes(2, dims)
    if e.shard_id:
        out += _field_varint(3, e.shard_id)
    if e.offset:
        out += _field_varint(4, e.offset)
    out += _field_varint(5, e.size)
    if e.crc32c is not None:
        out += _field_fixed32(6, e.crc32c)
    return out


def encode_header(num_shards: int = 1) -> bytes:
    # num_shards, endianness LITTLE (0, the default, omitted), version {producer: 1}
    return _field_varint(1, num_shards) + _field_bytes(3, _field_varint(1, 1))


# ---------------------------------------------------------------------------------------------
# LevelDB table
# ---------------------------------------------------------------------------------------------
def _decode_handle(buf: bytes | memoryview, pos: int) -> tuple[int, int, int]:
    offset, pos = decode_varint(buf, pos)
    size, pos = decode_varint(buf, pos)
    return offset, size, pos


def _read_block(data: bytes, offset: int, size: int, where: str, verify: bool) -> bytes:
    end = offset + size + BLOCK_TRAILER
    if end > len(data):
        raise WeightsError(f"{where}: block at {offset}+{size} runs past the end of the file")
    block = data[offset:offset + size]
    kind = data[offset + size]
    if kind != 0:
        raise WeightsError(f"{where}: block compression type {kind} (snappy) is not supported; "
                           f"TensorFlow writes checkpoint indexes uncompressed")
    if verify:
        stored = struct.unpack_from("<I", data, offset + size + 1)[0]
        if unmask_crc32c(stored) != crc32c(data[offset:offset + size + 1]):
            raise WeightsError(f"{where}: block checksum mismatch at offset {offset} (corrupt file)")
    return block


def iter_block(block: bytes, where: str = "table") -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise WeightsError(f"{where}: block too short")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise WeightsError(f"{where}: corrupt block (restart array larger than the block)")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = decode_varint(block, pos)
        unshared, pos = decode_varint(block, pos)
        vlen, pos = decode_varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > limit:
            raise WeightsError(f"{where}: corrupt block entry at {pos}")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def read_table(path: Path, verify: bool = True) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a LevelDB-format table file, in key order."""
    path = Path(path)
    where = str(path)
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            raise WeightsError(f"{where} is {path.stat().st_size / 1e6:.0f} MB; a TF checkpoint index may be at "
                               f"most {MAX_INDEX_BYTES // 1024**2} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if len(data) < FOOTER_SIZE:
        raise WeightsError(f"{where} is too short to be a TF checkpoint index ({len(data)} bytes)")
    magic = struct.unpack_from("<Q", data, len(data) - 8)[0]
    if magic != TABLE_MAGIC:
        raise WeightsError(f"{where} is not a TF checkpoint index (bad table magic {magic:#x})")
    footer = data[len(data) - FOOTER_SIZE:]
    _, _, pos = _decode_handle(footer, 0)  # meta-index (unused: no filters in bundles)
    idx_off, idx_size, _ = _decode_handle(footer, pos)
    index = _read_block(data, idx_off, idx_size, where, verify)
    items: list[tuple[bytes, bytes]] = []
    for _, handle in iter_block(index, where):
        off, size, _ = _decode_handle(handle, 0)
        items.extend(iter_block(_read_block(data, off, size, where, verify), where))
    return items


class _BlockBuilder:
    def __init__(self, restart_interval: int) -> None:
        self.buf = bytearray()
        self.restarts = [0]
        self.count = 0
        self.last = b""
        self.interval = restart_interval

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count < self.interval:
            limit = min(len(key), len(self.last))
            while shared < limit and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.count = 0
        self.buf += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        self.buf += key[shared:] + value
        self.last = key
        self.count += 1

    def finish(self) -> bytes:
        restarts = b"".join(struct.pack("<I", r) for r in self.restarts)
        return bytes(self.buf) + restarts + struct.pack("<I", len(self.restarts))

    @property
    def size(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4


def write_table(path: Path, items: list[tuple[bytes, bytes]], block_size: int = BLOCK_SIZE) -> None:
    """Write sorted (key, value) pairs as an uncompressed LevelDB-format table."""
    keys = [k for k, _ in items]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError("table keys must be unique and sorted")
    out = bytearray()

    def emit(block: bytes) -> bytes:
        offset = len(out)
        out.extend(block)
        trailer_type = b"\x00"
        out.extend(trailer_type + struct.pack("<I", masked_crc32c(block + trailer_type)))
        return encode_varint(offset) + encode_varint(len(block))

    index = _BlockBuilder(1)
    block = _BlockBuilder(RESTART_INTERVAL)
    for key, value in items:
        block.add(key, value)
        if block.size >= block_size:
            index.add(block.last, emit(block.finish()))
            block = _BlockBuilder(RESTART_INTERVAL)
    if block.count or not items:
        index.add(block.last, emit(block.finish()))
    meta_handle = emit(_BlockBuilder(RESTART_INTERVAL).finish())
    index_handle = emit(index.finish())
    footer = meta_handle + index_handle
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", TABLE_MAGIC)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(bytes(out) + footer)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def resolve_prefix(path: Path) -> Path:
    """The checkpoint prefix from a ``.index``/``.data-*``/``.meta`` file, the prefix itself, or a
    folder holding a ``checkpoint`` state file (its ``model_checkpoint_path``) or one ``*.index``."""
    path = Path(path)
    if path.is_dir():
        state = path / "checkpoint"
        if state.exists():
            for line in state.read_text(errors="replace").splitlines():
                if line.startswith("model_checkpoint_path:"):
                    name = line.split(":", 1)[1].strip().strip('"')
                    p = Path(name)
                    return p if p.is_absolute() and p.with_name(p.name + ".index").exists() else path / p.name
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        raise WeightsError(f"{path} holds {len(indexes)} .index files and no 'checkpoint' file; name one")
    name = path.name
    if name.endswith(".index") or name.endswith(".meta"):
        return path.with_name(name.rsplit(".", 1)[0])
    if ".data-" in name:
        return path.with_name(name.split(".data-", 1)[0])
    return path


def read_checkpoint(path: Path, include: Callable[[str], bool] | None = None,
                    verify: bool = True) -> dict[str, torch.Tensor]:
    """{variable name: tensor} of a TF1 checkpoint. ``include`` filters names before the data is
    read; ``verify`` checks the (masked) crc32c of every index block and tensor."""
    prefix = resolve_prefix(path)
    index_path = prefix.with_name(prefix.name + ".index")
    if not index_path.exists():
        raise WeightsError(f"TF checkpoint index {index_path} does not exist")
    try:
        return _read_checkpoint(prefix, index_path, include, verify)
    except WeightsError as exc:
        text = str(exc)
        raise WeightsError(text if str(index_path) in text or str(prefix) in text
                           else f"{index_path}: {text}") from None


def _read_checkpoint(prefix: Path, index_path: Path, include: Callable[[str], bool] | None,
                     verify: bool) -> dict[str, torch.Tensor]:
    items = read_table(index_path, verify)
    if not items or items[0][0] != b"":
        raise WeightsError(f"{index_path} has no bundle header (not a TF2-style V2 checkpoint?)")
    header = parse_proto(items[0][1])
    num_shards = header.get(1, [1])[0]
    if not 1 <= num_shards <= 99999:
        raise WeightsError(f"{index_path}: the header names {num_shards} data shards")
    total = 0
    if header.get(2, [0])[0] != 0:
        raise WeightsError(f"{index_path}: big-endian checkpoints are not supported")
    shards: dict[int, np.memmap] = {}
    out: dict[str, torch.Tensor] = {}
    for key, value in items[1:]:
        name = key.decode("utf-8", errors="replace")
        if include is not None and not include(name):
            continue
        entry = decode_entry(value)
        if entry.sliced:
            raise WeightsError(f"{name}: partitioned (sliced) variables are not supported")
        if entry.dtype not in TF_DTYPES and entry.dtype != DT_BFLOAT16:
            raise WeightsError(f"{name}: TF dtype {entry.dtype} is not supported")
        itemsize = 2 if entry.dtype == DT_BFLOAT16 else TF_DTYPES[entry.dtype].itemsize
        if any(d < 0 for d in entry.shape) or len(entry.shape) > 8:
            raise WeightsError(f"{name}: shape {list(entry.shape)} is not a tensor shape")
        nbytes = math.prod(entry.shape) * itemsize
        if nbytes != entry.size:
            raise WeightsError(f"{name}: shape {list(entry.shape)} needs {nbytes} bytes but the entry "
                               f"holds {entry.size}")
        if entry.size > MAX_TENSOR_BYTES:
            raise WeightsError(f"{name}: tensor of {entry.size / 1e9:.1f} GB, more than the "
                               f"{MAX_TENSOR_BYTES / 1024**3:.0f} GiB per-tensor limit")
        total += entry.size
        if total > MAX_CHECKPOINT_BYTES:
            raise WeightsError(f"tensors add up to more than the {MAX_CHECKPOINT_BYTES / 1024**3:.0f} GiB "
                               f"per-checkpoint limit")
        if entry.shard_id >= num_shards:
            raise WeightsError(f"{name}: shard {entry.shard_id} of {num_shards} does not exist")
        if entry.shard_id not in shards:
            shard = prefix.with_name(f"{prefix.name}.data-{entry.shard_id:05d}-of-{num_shards:05d}")
            if not shard.exists():
                raise WeightsError(f"TF checkpoint data file {shard} does not exist")
            if shard.stat().st_size == 0:
                raise WeightsError(f"TF checkpoint data file {shard} is empty")
            shards[entry.shard_id] = np.memmap(shard, dtype=np.uint8, mode="r")
        if entry.offset + entry.size > len(shards[entry.shard_id]):
            raise WeightsError(f"{name}: data runs past the end of shard {entry.shard_id}")
        raw = shards[entry.shard_id][entry.offset:entry.offset + entry.size]
        if len(raw) != entry.size:
            raise WeightsError(f"{name}: data runs past the end of shard {entry.shard_id}")
        if verify and entry.crc32c is not None and masked_crc32c(raw.tobytes()) != entry.crc32c:
            raise WeightsError(f"{name}: tensor checksum mismatch (corrupt data file)")
        if entry.dtype == DT_BFLOAT16:
            bits = np.frombuffer(raw.tobytes(), "<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw.tobytes(), TF_DTYPES[entry.dtype])
        expected = int(np.prod(entry.shape)) if entry.shape else 1
        if arr.size != expected:
            raise WeightsError(f"{name}: {arr.size} values stored for shape {list(entry.shape)}")
        out[name] = torch.from_numpy(arr.reshape(entry.shape).copy())
    return out


def write_checkpoint(prefix: Path, tensors: Mapping[str, torch.Tensor | np.ndarray]) -> Path:
    """Write ``{name: tensor}`` as a single-shard TF1 checkpoint ``prefix.index`` +
    ``prefix.data-00000-of-00001`` (what ``tf.train.Saver`` writes, minus the graph ``.meta``)."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    data = bytearray()
    items: list[tuple[bytes, bytes]] = [(b"", encode_header(1))]
    for name in sorted(tensors, key=lambda n: n.encode()):
        value = tensors[name]
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt not in _NP_TO_TF:
            raise ValueError(f"{name}: dtype {arr.dtype} cannot be written to a TF checkpoint")
        raw = np.ascontiguousarray(arr, dtype=dt).tobytes()
        entry = BundleEntry(dtype=_NP_TO_TF[dt], shape=tuple(arr.shape), shard_id=0, offset=len(data),
                            size=len(raw), crc32c=masked_crc32c(raw))
        data += raw
        items.append((name.encode(), encode_entry(entry)))
    shard = prefix.with_name(f"{prefix.name}.data-00000-of-00001")
    shard.write_bytes(bytes(data))
    write_table(prefix.with_name(prefix.name + ".index"), items)
    return prefix


def list_variables(path: Path) -> dict[str, tuple[list[int], str]]:
    """{name: (shape, numpy dtype name)} without reading tensor data (``tf.train.list_variables``)."""
    prefix = resolve_prefix(path)
    index_path = prefix.with_name(prefix.name + ".index")
    if not index_path.exists():
        raise WeightsError(f"TF checkpoint index {index_path} does not exist")
    items = read_table(index_path)
    out: dict[str, tuple[list[int], str]] = {}
    for key, value in items[1:]:
        try:
            e = decode_entry(value)
        except WeightsError as exc:
            raise WeightsError(f"{index_path}: {exc}") from None
        dt = "bfloat16" if e.dtype == DT_BFLOAT16 else str(TF_DTYPES.get(e.dtype, f"tf{e.dtype}"))
        out[key.decode("utf-8", errors="replace")] = (list(e.shape), dt)
    return out
