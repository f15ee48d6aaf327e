"""A tiny, independent HDF5 structure decoder, used only to *verify* the corpus.

`make_corpus.py` asks h5py to produce particular on-disk structures (superblock
versions, object-header continuations, chunk indices, link storage, VDS
encodings).  h5py/HDF5 choose many of these themselves, so `check_corpus.py`
decodes the bytes with this module and asserts that each file really contains
the structure the README claims.

It reads only what that check needs: superblocks, object headers v1/v2 with
continuation blocks, and the headers of the index structures the messages point
at.  It never decodes data.  Field layouts follow the "HDF5 File Format
Specification Version 3.0".
"""

import struct

UNDEF = 0xFFFFFFFFFFFFFFFF

# Object header message types used below.
MSG_LINK_INFO = 0x02
MSG_LINK = 0x06
MSG_LAYOUT = 0x08
MSG_FILTERS = 0x0B
MSG_ATTRIBUTE = 0x0C
MSG_CONTINUATION = 0x10
MSG_SYMBOL_TABLE = 0x11
MSG_ATTR_INFO = 0x15

CHUNK_INDEX_NAMES = {
    1: "single_chunk",
    2: "implicit",
    3: "fixed_array",
    4: "extensible_array",
    5: "btree_v2",
}


class H5File:
    """Raw view of one HDF5 file: superblock fields and object-header decoding."""

    def __init__(self, path):
        with open(path, "rb") as fh:
            buf = fh.read()
        # After a user block the superblock is at 512, 1024, 2048, ...; every address is
        # relative to it, so the view starts there.
        at = 0
        while buf[at:at + 8] != b"\x89HDF\r\n\x1a\n":
            if at >= len(buf):
                raise ValueError(f"{path}: no HDF5 signature")
            at = 512 if at == 0 else 2 * at
        self.buf = buf[at:]
        self.sb_version = self.buf[8]
        if self.sb_version in (0, 1):
            self.so, self.sl = self.buf[13], self.buf[14]
            self.group_leaf_k, self.group_internal_k = struct.unpack_from("<HH", self.buf, 16)
            pos = 24
            self.istore_k = None
            if self.sb_version == 1:
                (self.istore_k,) = struct.unpack_from("<H", self.buf, pos)
                pos += 4
            pos += 4 * self.so  # base, free-space, EOF, driver addresses
            # Root group symbol table entry: name offset, object header address.
            self.root = self.addr(pos + self.so)
            self.status_flags = struct.unpack_from("<I", self.buf, 20)[0]
        else:
            self.so, self.sl = self.buf[9], self.buf[10]
            self.status_flags = self.buf[11]
            self.root = self.addr(12 + 3 * self.so)

    # -- primitive readers ------------------------------------------------
    def uint(self, pos, size):
        return int.from_bytes(self.buf[pos:pos + size], "little")

    def addr(self, pos):
        return self.uint(pos, self.so)

    def length(self, pos):
        return self.uint(pos, self.sl)

    # -- object headers -----------------------------------------------------
    def object_header(self, address):
        """Return dict(version, messages=[(type, bytes)], continuations=n)."""
        buf = self.buf
        msgs = []
        if buf[address:address + 4] == b"OHDR":
            version = buf[address + 4]
            flags = buf[address + 5]
            pos = address + 6
            if flags & 0x20:
                pos += 16  # access/modification/change/birth times
            if flags & 0x10:
                pos += 4  # attribute phase-change values
            size_len = 1 << (flags & 3)
            chunk0 = self.uint(pos, size_len)
            pos += size_len
            blocks = [(pos, pos + chunk0)]
            creation_order = bool(flags & 0x04)
            ncont = 0
            while blocks:
                start, end = blocks.pop(0)
                p = start
                # A message header is 4 bytes (+2 with creation order); a shorter
                # tail before the checksum is a gap.
                hdr = 6 if creation_order else 4
                while p + hdr <= end:
                    mtype = buf[p]
                    msize = struct.unpack_from("<H", buf, p + 1)[0]
                    p += hdr
                    data = buf[p:p + msize]
                    p += msize
                    msgs.append((mtype, data))
                    if mtype == MSG_CONTINUATION:
                        caddr, clen = self.addr_len(data)
                        if buf[caddr:caddr + 4] != b"OCHK":
                            raise ValueError("continuation block without OCHK")
                        blocks.append((caddr + 4, caddr + clen - 4))
                        ncont += 1
            return {"version": version, "messages": msgs, "continuations": ncont}
        version = buf[address]
        if version != 1:
            raise ValueError(f"unknown object header at {address:#x}")
        nmsgs = struct.unpack_from("<H", buf, address + 2)[0]
        hsize = struct.unpack_from("<I", buf, address + 8)[0]
        blocks = [(address + 16, address + 16 + hsize)]
        ncont = 0
        while blocks and len(msgs) < nmsgs:
            start, end = blocks.pop(0)
            p = start
            while p + 8 <= end and len(msgs) < nmsgs:
                mtype, msize = struct.unpack_from("<HH", buf, p)
                data = buf[p + 8:p + 8 + msize]
                p += 8 + msize
                msgs.append((mtype, data))
                if mtype == MSG_CONTINUATION:
                    caddr, clen = self.addr_len(data)
                    blocks.append((caddr, caddr + clen))
                    ncont += 1
        return {"version": 1, "messages": msgs, "continuations": ncont}

    def addr_len(self, data):
        a = int.from_bytes(data[:self.so], "little")
        n = int.from_bytes(data[self.so:self.so + self.sl], "little")
        return a, n

    # -- message decoders -------------------------------------------------------
    def layout(self, data):
        """Decode a data layout message into a dict."""
        version, cls = data[0], data[1]
        out = {"layout_version": version}
        if cls == 0:
            out["layout"] = "compact"
        elif cls == 1:
            out["layout"] = "contiguous"
        elif cls == 3:
            out["layout"] = "virtual"
            out["heap_addr"] = int.from_bytes(data[2:2 + self.so], "little")
            out["heap_index"] = struct.unpack_from("<I", data, 2 + self.so)[0]
        elif cls == 2 and version == 3:
            out["layout"] = "chunked"
            out["chunk_index"] = "btree_v1"
            out["index_addr"] = int.from_bytes(data[3:3 + self.so], "little")
            out["ndims"] = data[2]
        elif cls == 2 and version in (4, 5):
            out["layout"] = "chunked"
            flags, ndims, enc = data[2], data[3], data[4]
            p = 5 + ndims * enc
            itype = data[p]
            p += 1
            out["flags"] = flags
            out["ndims"] = ndims
            out["chunk_index"] = CHUNK_INDEX_NAMES[itype]
            if itype == 1 and flags & 2:
                out["filtered_chunk_size"] = self.uint_from(data, p, self.sl)
                p += self.sl + 4
            elif itype == 3:
                p += 1
            elif itype == 4:
                p += 5
            elif itype == 5:
                p += 6
            out["index_addr"] = int.from_bytes(data[p:p + self.so], "little")
        else:
            raise ValueError(f"layout version {version} class {cls}")
        return out

    @staticmethod
    def uint_from(data, pos, size):
        return int.from_bytes(data[pos:pos + size], "little")

    def filters(self, data):
        """Filter ids in pipeline order, plus the filter-pipeline message version."""
        version, n = data[0], data[1]
        p = 8 if version == 1 else 2
        ids = []
        for _ in range(n):
            fid = struct.unpack_from("<H", data, p)[0]
            p += 2
            name_len = 0
            if version == 1 or fid >= 256:
                name_len = struct.unpack_from("<H", data, p)[0]
                p += 2
            _flags, ncd = struct.unpack_from("<HH", data, p)
            p += 4
            if version == 1:
                name_len = (name_len + 7) // 8 * 8
            p += name_len + 4 * ncd
            if version == 1 and ncd % 2:
                p += 4
            ids.append(fid)
        return version, ids

    # -- index structures -------------------------------------------------------
    def fixed_array(self, address):
        b = self.buf
        assert b[address:address + 4] == b"FAHD"
        entry_size, page_bits = b[address + 6], b[address + 7]
        nelmts = self.length(address + 8)
        return {"entries": nelmts, "paged": nelmts > (1 << page_bits), "entry_size": entry_size}

    def extensible_array(self, address):
        b = self.buf
        assert b[address:address + 4] == b"EAHD"
        page_bits = b[address + 11]
        p = address + 12
        nsblks, _ssize, ndblks, _dsize, max_index, nrealized = (
            self.length(p + i * self.sl) for i in range(6))
        idx_blk_elmts = b[address + 8]
        min_dblk = b[address + 9]
        # Rebuild the data-block size sequence (spec: super block s holds
        # 2**(s//2) data blocks of 2**((s+1)//2) * min elements) to learn
        # whether any allocated data block is big enough to be paged.
        paged = False
        covered = idx_blk_elmts
        s = 0
        while covered < max_index:
            dblk_nelmts = (1 << ((s + 1) // 2)) * min_dblk
            covered += (1 << (s // 2)) * dblk_nelmts
            if dblk_nelmts > (1 << page_bits):
                paged = True
            s += 1
        return {"super_blocks": nsblks, "data_blocks": ndblks, "max_index": max_index,
                "elements": nrealized, "paged": paged, "entry_size": b[address + 6]}

    def btree_v2(self, address):
        b = self.buf
        assert b[address:address + 4] == b"BTHD", hex(address)
        btype = b[address + 5]
        record_size, depth = struct.unpack_from("<HH", b, address + 10)
        p = address + 16 + self.so + 2
        nrec = self.length(p)
        return {"type": btype, "depth": depth, "records": nrec, "entry_size": record_size}

    def btree_v1(self, address):
        """Walk a v1 B-tree; return node count, depth and leaf-child count."""
        b = self.buf
        assert b[address:address + 4] == b"TREE", hex(address)
        ntype, level = b[address + 4], b[address + 5]
        if ntype == 0:
            key_size = self.sl
        else:
            ndims = self._v1_chunk_ndims
            key_size = 8 + 8 * ndims
        nodes, leaves_children, snods = 0, 0, 0

        def walk(a):
            nonlocal nodes, leaves_children, snods
            assert b[a:a + 4] == b"TREE"
            lvl = b[a + 5]
            used = struct.unpack_from("<H", b, a + 6)[0]
            nodes += 1
            p = a + 8 + 2 * self.so + key_size
            children = []
            for _ in range(used):
                children.append(self.addr(p))
                p += self.so + key_size
            if lvl == 0:
                leaves_children += used
                if ntype == 0:
                    snods += sum(1 for c in children if b[c:c + 4] == b"SNOD")
            else:
                for c in children:
                    walk(c)

        walk(address)
        return {"type": ntype, "depth": level, "nodes": nodes,
                "children": leaves_children, "snods": snods}

    def chunk_btree_v1(self, address, ndims):
        self._v1_chunk_ndims = ndims
        return self.btree_v1(address)

    def fractal_heap_rows(self, address):
        """Current rows of the root indirect block (0: the root is a direct block)."""
        b = self.buf
        assert b[address:address + 4] == b"FRHP"
        p = address + 4 + 1 + 2 + 2 + 1 + 4
        p += self.sl + self.so + self.sl + self.so + 8 * self.sl
        p += 2 + self.sl + self.sl + 2 + 2
        p += self.so  # root block address
        return struct.unpack_from("<H", b, p)[0]

    # -- virtual dataset mappings ----------------------------------------------
    def vds_mappings(self, heap_addr, index):
        """Decode the VDS global-heap blob: version, and per mapping the
        source file/dataset and the (type, version) of both selections."""
        b = self.buf
        assert b[heap_addr:heap_addr + 4] == b"GCOL"
        csize = self.length(heap_addr + 8)
        p = heap_addr + 8 + self.sl
        end = heap_addr + csize
        blob = None
        while p + 8 + self.sl <= end:
            idx = struct.unpack_from("<H", b, p)[0]
            osize = self.length(p + 8)
            data_start = p + 8 + self.sl
            if idx == index:
                blob = b[data_start:data_start + osize]
                break
            if idx == 0:
                break
            p = data_start + (osize + 7) // 8 * 8
        if blob is None:
            raise ValueError("VDS heap object not found")
        version = blob[0]
        nmaps = int.from_bytes(blob[1:1 + self.sl], "little")
        p = 1 + self.sl
        maps = []
        for _ in range(nmaps):
            flags = 0
            if version >= 1:
                flags = blob[p]
                p += 1
            # Blob version 1 (HDF5 2.0) starts each mapping with a flags byte
            # and may replace a repeated name by the index (sizeof_size bytes)
            # of an earlier mapping.  Observed in this corpus (not from the
            # spec): bit 0 file name shared, bit 1 dataset name shared, bit 2
            # source file is "." (name omitted).
            if version >= 1 and flags & 0x04:
                src = "."
            elif version >= 1 and flags & 0x01:
                ref = int.from_bytes(blob[p:p + self.sl], "little")
                p += self.sl
                src = maps[ref]["file"]
            else:
                z = blob.index(b"\0", p)
                src = blob[p:z].decode()
                p = z + 1
            if version >= 1 and flags & 0x02:
                ref = int.from_bytes(blob[p:p + self.sl], "little")
                p += self.sl
                dset = maps[ref]["dataset"]
            else:
                z = blob.index(b"\0", p)
                dset = blob[p:z].decode()
                p = z + 1
            src_sel, p = self._selection(blob, p)
            vir_sel, p = self._selection(blob, p)
            maps.append({"file": src, "dataset": dset, "src_sel": src_sel, "vir_sel": vir_sel})
        return {"version": version, "mappings": maps}

    @staticmethod
    def _selection(blob, p):
        """Skip one encoded dataspace selection; return (type, version, detail)."""
        stype, sver = struct.unpack_from("<II", blob, p)
        p += 8
        names = {0: "none", 1: "points", 2: "hyperslab", 3: "all"}
        detail = None
        if stype in (0, 3):
            p += 8  # "none"/"all" (version 1 only): reserved + length, both 0
        elif stype == 2:
            if sver == 1:
                _res, _length, rank, nblocks = struct.unpack_from("<IIII", blob, p)
                p += 16 + nblocks * rank * 8
                detail = "irregular"
            elif sver == 2:
                flags = blob[p]
                _length, rank = struct.unpack_from("<II", blob, p + 1)
                p += 9
                if flags & 1:
                    p += 4 * 8 * rank
                    detail = "regular"
                else:
                    nblocks = struct.unpack_from("<Q", blob, p)[0]
                    p += 8 + nblocks * rank * 16
                    detail = "irregular"
            elif sver == 3:
                flags, enc = blob[p], blob[p + 1]
                rank = struct.unpack_from("<I", blob, p + 2)[0]
                p += 6
                if flags & 1:
                    p += 4 * enc * rank
                    detail = "regular"
                else:
                    nblocks = int.from_bytes(blob[p:p + enc], "little")
                    p += enc + nblocks * rank * 2 * enc
                    detail = "irregular"
            else:
                raise ValueError(f"hyperslab selection version {sver}")
        else:
            raise ValueError(f"selection type {stype}")
        return {"type": names[stype], "version": sver, "detail": detail}, p
