#!/usr/bin/env python3
"""Verify that the corpus really has the on-disk structures README.md claims.

    .venv/bin/python tests/corpus/check_corpus.py tests/corpus/files

For every file it decodes the bytes with h5layout.py (independent of HDF5) and
checks superblock versions, object-header versions and continuation blocks,
group storage (symbol table / compact links / dense links), attribute storage,
layout message versions, chunk index types and their size (paging, B-tree
depth), filter pipelines and VDS mapping encodings.  It also cross-checks every
dataset of manifest.json (layout class, filter ids) against the bytes, and runs
the system h5dump (HDF5 1.10) on each file to record which ones an older HDF5
can read.  Prints a table (pasted into README.md) and exits non-zero on a
failed check.
"""

import json
import os
import subprocess
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h5layout  # noqa: E402
from h5layout import (MSG_ATTR_INFO, MSG_ATTRIBUTE, MSG_FILTERS, MSG_LAYOUT,  # noqa: E402
                      MSG_LINK, MSG_LINK_INFO, MSG_SYMBOL_TABLE, UNDEF)

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL", what)


class Inspector:
    def __init__(self, outdir, rel):
        self.rel = rel
        self.path = os.path.join(outdir, rel)
        self.raw = h5layout.H5File(self.path)
        still_open = self.raw.sb_version >= 2 and self.raw.status_flags != 0
        self.h5 = h5py.File(self.path, "r", swmr=still_open)

    def close(self):
        self.h5.close()

    def header(self, path):
        obj = self.h5[path]
        return self.raw.object_header(h5py.h5o.get_info(obj.id).addr)

    def messages(self, path, mtype):
        return [d for t, d in self.header(path)["messages"] if t == mtype]

    # -- groups -------------------------------------------------------------------
    def group_storage(self, path):
        """'symbol_table' | 'compact' | 'dense' (+ details)."""
        oh = self.header(path)
        st = [d for t, d in oh["messages"] if t == MSG_SYMBOL_TABLE]
        if st:
            btree = self.raw.addr_len(st[0])[0]
            return "symbol_table", self.raw.btree_v1(btree)
        li = [d for t, d in oh["messages"] if t == MSG_LINK_INFO]
        nlinks = sum(1 for t, _ in oh["messages"] if t == MSG_LINK)
        if li:
            flags = li[0][1]
            p = 2 + (8 if flags & 1 else 0)
            heap = self.raw.uint_from(li[0], p, self.raw.so)
            name_bt = self.raw.uint_from(li[0], p + self.raw.so, self.raw.so)
            if heap != UNDEF:
                detail = {"heap_root_rows": self.raw.fractal_heap_rows(heap),
                          "name_index": self.raw.btree_v2(name_bt)}
                if flags & 2:
                    order_bt = self.raw.uint_from(li[0], p + 2 * self.raw.so, self.raw.so)
                    detail["order_index"] = self.raw.btree_v2(order_bt)
                return "dense", detail
        return "compact", {"links": nlinks}

    # -- attributes -----------------------------------------------------------------
    def attribute_storage(self, path):
        oh = self.header(path)
        ai = [d for t, d in oh["messages"] if t == MSG_ATTR_INFO]
        compact = sum(1 for t, _ in oh["messages"] if t == MSG_ATTRIBUTE)
        if ai:
            flags = ai[0][1]
            p = 2 + (2 if flags & 1 else 0)
            heap = self.raw.uint_from(ai[0], p, self.raw.so)
            if heap != UNDEF:
                name_bt = self.raw.uint_from(ai[0], p + self.raw.so, self.raw.so)
                return "dense", {"name_index": self.raw.btree_v2(name_bt), "compact_msgs": compact}
        return "compact", {"attribute_msgs": compact}

    # -- datasets ---------------------------------------------------------------
    def layout(self, path):
        lay = self.raw.layout(self.messages(path, MSG_LAYOUT)[0])
        idx = lay.get("chunk_index")
        a = lay.get("index_addr")
        if idx == "btree_v1" and a != UNDEF:
            lay["index"] = self.raw.chunk_btree_v1(a, lay["ndims"])
        elif idx == "fixed_array" and a != UNDEF:
            lay["index"] = self.raw.fixed_array(a)
        elif idx == "extensible_array" and a != UNDEF:
            lay["index"] = self.raw.extensible_array(a)
        elif idx == "btree_v2" and a != UNDEF:
            lay["index"] = self.raw.btree_v2(a)
        elif lay["layout"] == "virtual":
            lay["vds"] = self.raw.vds_mappings(lay["heap_addr"], lay["heap_index"])
        return lay

    def filters(self, path):
        msgs = self.messages(path, MSG_FILTERS)
        return self.raw.filters(msgs[0]) if msgs else (None, [])


def h5dump_ok(path):
    try:
        r = subprocess.run(["h5dump", "-H", "-p", path], capture_output=True, timeout=60)
    except FileNotFoundError:
        return None
    return r.returncode == 0


# ---------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------

SUPERBLOCK = {
    "nxmx_small_earliest.h5": 0, "nxmx_small_v108.h5": 2, "nxmx_small_v110.h5": 3,
    "nxmx_small_v112.h5": 3, "nxmx_small_latest.h5": 3, "superblock1.h5": 1, "swmr_open.h5": 3,
}

# (file, dataset) -> expected chunk index (plus optional predicates on it)
CHUNK_INDEX = {
    ("layouts_earliest.h5", "/tiles"): ("btree_v1", lambda i: i["depth"] >= 1 and i["children"] == 72),
    ("layouts_earliest.h5", "/btree_v1_many"): ("btree_v1", lambda i: i["depth"] >= 1 and i["nodes"] > 3),
    ("layouts_earliest.h5", "/fill_unallocated"): ("btree_v1", lambda i: i["children"] == 3),
    ("superblock1.h5", "/chunked"): ("btree_v1", lambda i: i["depth"] >= 1),
    ("layouts_latest.h5", "/tiles"): ("fixed_array", lambda i: not i["paged"]),
    ("layouts_latest.h5", "/fill_unallocated"): ("fixed_array", None),
    ("layouts_latest.h5", "/edge_chunks"): ("fixed_array", None),
    ("layouts_latest.h5", "/multi_frame"): ("fixed_array", None),
    ("swmr_open.h5", "/entry/data/data"): ("extensible_array", None),
    ("nxmx_small_earliest.h5", "/entry/data/data"): ("btree_v1", None),
    ("nxmx_small_v108.h5", "/entry/data/data"): ("btree_v1", None),
    ("nxmx_small_v112.h5", "/entry/data/data"): ("fixed_array", None),
    ("nxmx_small_latest.h5", "/entry/data/data"): ("fixed_array", lambda i: i["entry_size"] == 20),
    ("nxmx_small_v110.h5", "/entry/data/data"): ("fixed_array", lambda i: i["entry_size"] == 15),
    ("dls_000001.h5", "/data"): ("extensible_array", None),
}
for _f in ("layouts_v110.h5", "layouts_latest.h5"):
    CHUNK_INDEX.update({
        (_f, "/single_chunk"): ("single_chunk", None),
        (_f, "/single_chunk_filtered"): ("single_chunk", None),
        (_f, "/implicit"): ("implicit", None),
        (_f, "/farray_filtered"): ("fixed_array", lambda i: not i["paged"]),
        (_f, "/farray_paged"): ("fixed_array", lambda i: i["paged"] and i["entries"] == 1500),
        (_f, "/farray_paged_sparse"): ("fixed_array", lambda i: i["paged"]),
        (_f, "/earray_small"): ("extensible_array", lambda i: i["super_blocks"] == 0),
        (_f, "/earray_big"): ("extensible_array",
                              lambda i: i["paged"] and i["super_blocks"] > 0 and i["data_blocks"] > 0),
        (_f, "/earray_edge"): ("extensible_array", None),
        (_f, "/btree_v2"): ("btree_v2", lambda i: i["depth"] >= 1 and i["records"] == 300),
        (_f, "/btree_v2_filtered"): ("btree_v2", lambda i: i["depth"] >= 1 and i["records"] == 300),
        (_f, "/edge_chunks_unfiltered_partial"): ("fixed_array", None),
        (_f, "/skipped_filters"): ("fixed_array", None),
    })

# (file, group) -> expected storage and predicate on details
GROUPS = {
    ("groups_earliest.h5", "/"): ("symbol_table", None),
    ("groups_earliest.h5", "/a/b/c"): ("symbol_table", None),
    ("groups_earliest.h5", "/big"): ("symbol_table", lambda d: d["depth"] >= 1 and d["snods"] > 100),
    ("superblock1.h5", "/group"): ("symbol_table", lambda d: d["depth"] >= 1),
    ("groups_latest.h5", "/compact"): ("compact", lambda d: d["links"] == 5),
    ("groups_latest.h5", "/dense"): ("dense", lambda d: d["name_index"]["type"] == 5),
    ("groups_latest.h5", "/dense_ordered"): ("dense", lambda d: d["order_index"]["type"] == 6),
    ("groups_latest.h5", "/big"): ("dense", lambda d: d["heap_root_rows"] > 0
                                   and d["name_index"]["depth"] >= 1 and d["name_index"]["records"] == 2000),
    ("links_earliest.h5", "/"): ("symbol_table", None),
    ("links_earliest.h5", "/external"): ("compact", None),
    ("links_latest.h5", "/"): ("compact", None),
}

ATTRIBUTES = {
    ("attributes_latest.h5", "/many"): ("dense", lambda d: d["name_index"]["type"] == 8),
    ("attributes_latest.h5", "/typed"): ("dense", None),
    ("attributes_latest.h5", "/typed_dataset"): ("dense", None),
    ("attributes_latest.h5", "/compact_mix"): ("compact", lambda d: d["attribute_msgs"] == 8),
    ("attributes_latest.h5", "/continued"): ("compact", lambda d: d["attribute_msgs"] == 8),
    ("attributes_earliest.h5", "/many"): ("compact", lambda d: d["attribute_msgs"] == 40),
}

# libver each file was written with, for the chunked layout message version rule:
# v3 (v1 B-tree) up to v108, v4 for v110/v112, and with HDF5 2.0's latest (v200)
# v5 for filtered chunked datasets, v4 for unfiltered ones.
FILE_LIBVER = {
    "nxmx_small_earliest.h5": "earliest", "nxmx_small_v108.h5": "v108", "nxmx_small_v110.h5": "v110",
    "nxmx_small_v112.h5": "v112", "nxmx_small_latest.h5": "latest",
    "layouts_earliest.h5": "earliest", "layouts_v110.h5": "v110", "layouts_latest.h5": "latest",
    "filters_earliest.h5": "earliest", "filters_latest.h5": "latest",
    "dtypes_earliest.h5": "earliest", "dtypes_latest.h5": "latest",
    "eiger2_data_000001.h5": "v110", "dls_000001.h5": "latest",
}


def expected_chunked_layout_version(libver, filtered):
    if libver in ("earliest", "v108"):
        return 3
    if libver in ("v110", "v112"):
        return 4
    return 5 if filtered else 4


# (file, object) -> (object header version, minimum number of continuation blocks)
HEADERS = {
    ("attributes_earliest.h5", "/continued"): (1, 1),
    ("attributes_earliest.h5", "/many"): (1, 1),
    ("attributes_latest.h5", "/continued"): (2, 1),
    ("nxmx_small_earliest.h5", "/entry"): (1, 0),
    ("nxmx_small_v108.h5", "/entry"): (2, 1),
    ("nxmx_small_latest.h5", "/entry"): (2, 1),
}


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "files")
    with open(os.path.join(outdir, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    rows = []
    for fentry in manifest["files"]:
        rel = fentry["file"]
        ins = Inspector(outdir, rel)
        raw = ins.raw
        check(raw.sb_version == fentry["superblock"], f"{rel}: manifest superblock")
        if rel in SUPERBLOCK:
            check(raw.sb_version == SUPERBLOCK[rel], f"{rel}: superblock {raw.sb_version}")
        if rel == "superblock1.h5":
            check(raw.istore_k == 4 and raw.group_leaf_k == 2 and raw.group_internal_k == 8,
                  f"{rel}: istore_k/sym_k")
        if rel == "swmr_open.h5":
            check(raw.status_flags == 0x05, f"{rel}: status flags {raw.status_flags:#x}")
        dump = h5dump_ok(ins.path)
        notes = []
        for d in fentry["datasets"]:
            if d.get("via"):
                continue
            p = d["path"]
            lay = ins.layout(p)
            check(lay["layout"] == d["layout"], f"{rel}:{p}: layout {lay['layout']} vs {d['layout']}")
            fver, fids = ins.filters(p)
            check(fids == d["filters"], f"{rel}:{p}: filters {fids} vs {d['filters']}")
            if lay["layout"] == "chunked" and rel in FILE_LIBVER:
                want_v = expected_chunked_layout_version(FILE_LIBVER[rel], bool(fids))
                check(lay["layout_version"] == want_v,
                      f"{rel}:{p}: layout message v{lay['layout_version']} != v{want_v}")
            want = CHUNK_INDEX.get((rel, p))
            if want:
                kind, pred = want
                check(lay.get("chunk_index") == kind, f"{rel}:{p}: index {lay.get('chunk_index')} != {kind}")
                if pred:
                    check(pred(lay["index"]), f"{rel}:{p}: index details {lay.get('index')}")
            if rel.startswith(("layouts_", "filters_")) or (rel == "superblock1.h5" and lay.get("chunk_index")):
                desc = lay.get("chunk_index", lay["layout"])
                idx = lay.get("index") or {}
                extra = []
                if "depth" in idx and lay.get("chunk_index") != "btree_v1":
                    extra.append(f"depth {idx['depth']}, {idx['records']} records")
                if lay.get("chunk_index") == "btree_v1":
                    extra.append(f"depth {idx['depth']}, {idx['nodes']} nodes")
                if idx.get("paged"):
                    extra.append("paged")
                if "super_blocks" in idx:
                    extra.append(f"{idx['super_blocks']} super blocks, {idx['data_blocks']} data blocks")
                if lay.get("flags", 0) & 1:
                    extra.append("partial edge chunks unfiltered")
                if fids:
                    extra.append(f"filters {fids} (pipeline msg v{fver})")
                rows.append((rel, p, f"layout v{lay['layout_version']}", desc, "; ".join(extra)))
            if lay["layout"] == "virtual":
                vds = lay["vds"]
                sels = sorted({f"{m['src_sel']['type']} v{m['src_sel']['version']}" for m in vds["mappings"]}
                              | {f"{m['vir_sel']['type']} v{m['vir_sel']['version']}" for m in vds["mappings"]})
                files = sorted({m["file"] for m in vds["mappings"]})
                rows.append((rel, p, f"layout v{lay['layout_version']}", "virtual",
                             f"heap blob v{vds['version']}, {len(vds['mappings'])} mappings, "
                             f"selections {', '.join(sels)}; sources {', '.join(files)}"))
                if rel == "vds_printf.h5":
                    check(any("%b" in m["file"] for m in vds["mappings"]), f"{rel}: printf source")
                if rel == "vds_samefile.h5":
                    check(all(m["file"] == "." for m in vds["mappings"]), f"{rel}: same-file source")
                if rel == "ib_a_master.h5":
                    check(all(m["src_sel"]["detail"] == "regular" and m["src_sel"]["version"] == 3
                              for m in vds["mappings"]), f"{rel}: regular strided source selection")
                if rel == "ib_a_earliest_master.h5":
                    check(all(m["src_sel"]["detail"] == "irregular" and m["src_sel"]["version"] == 1
                              for m in vds["mappings"]), f"{rel}: block-list source selection")
                if rel == "ib_b_master.h5":
                    check(vds["version"] == 1 and len(vds["mappings"]) == 4, f"{rel}: VDS blob v1")
                if rel == "vds_printf_v110.h5":
                    check(any(m["vir_sel"]["version"] == 2 for m in vds["mappings"]), f"{rel}: selection v2")
            if rel.startswith("filters_"):
                check(fver == (1 if "earliest" in rel else 2), f"{rel}:{p}: pipeline version {fver}")
        for (frel, gpath), (kind, pred) in GROUPS.items():
            if frel == rel:
                got, detail = ins.group_storage(gpath)
                check(got == kind, f"{rel}:{gpath}: group storage {got} != {kind}")
                if pred and got == kind:
                    check(pred(detail), f"{rel}:{gpath}: group details {detail}")
                notes.append(f"{gpath}: {got} {detail}")
        for (frel, opath), (kind, pred) in ATTRIBUTES.items():
            if frel == rel:
                got, detail = ins.attribute_storage(opath)
                check(got == kind, f"{rel}:{opath}: attribute storage {got} != {kind}")
                if pred and got == kind:
                    check(pred(detail), f"{rel}:{opath}: attribute details {detail}")
                notes.append(f"{opath} attributes: {got} {detail}")
        for (frel, opath), (ver, ncont) in HEADERS.items():
            if frel == rel:
                oh = ins.header(opath)
                check(oh["version"] == ver and oh["continuations"] >= ncont,
                      f"{rel}:{opath}: header v{oh['version']} with {oh['continuations']} continuations")
                notes.append(f"{opath}: object header v{oh['version']}, {oh['continuations']} continuation blocks")
        ins.close()
        print(f"{rel}: superblock v{raw.sb_version}, h5dump 1.10: {'ok' if dump else 'FAILS'}")
        for n in notes:
            print("   ", n)
    print()
    for r in rows:
        print(" | ".join(r))
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed")
        return 1
    print("\nall structure checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
