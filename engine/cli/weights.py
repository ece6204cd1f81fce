"""``i2i weights list | verify | import | keys``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..families import get_family, resolve_config, state_dict_keys
from ..limits import printable
from ..weights import Manifest, import_official
from .common import CliError


def _cmd_weights_list(args: argparse.Namespace) -> int:
    m = Manifest()
    if not m.entries:
        print(f"no models registered in {m.path}")
        return 0
    print(f"{'name':<28} {'family':<10} {'config':<16} {'size':>10}  provenance")
    for e in m.entries.values():
        prov = e.provenance.get("kind", "?")
        detail = e.provenance.get("upstream") or e.provenance.get("command", "")
        print(f"{printable(e.name):<28} {printable(e.family):<10} {printable(e.config_name):<16} "
              f"{e.bytes / 1e6:9.1f}M  {printable(prov)}: {printable(detail, 200)}")
    return 0


def _cmd_weights_verify(args: argparse.Namespace) -> int:
    m = Manifest()
    bad = 0
    for e in m.entries.values():
        r = m.verify(e)
        bad += r.status != "verified"
        print(f"{r.status:<11} {printable(e.name):<28} {printable(r.message, 400)}")
    if not m.entries:
        print(f"no models registered in {m.path}")
    return 1 if bad else 0


def _cmd_weights_import(args: argparse.Namespace) -> int:
    entry = import_official([Path(p) for p in args.paths], name=args.name, family_name=args.family,
                            config_name=args.config, replace=args.force)
    print(f"imported {entry.name}: {entry.family}/{entry.config_name}, {entry.bytes / 1e6:.1f} MB, "
          f"sha256 {entry.sha256[:12]}…")
    return 0


def _cmd_weights_keys(args: argparse.Namespace) -> int:
    family = get_family(args.family)
    config = resolve_config(family, args.config)
    if args.view:
        if args.view not in family.keys_extra:
            raise CliError(f"family {args.family!r} has no --{args.view} view")
        data = family.keys_extra[args.view](config)
    else:
        data = state_dict_keys(family.build(config))
    print(json.dumps(data, indent=1))
    return 0


def add_commands(top: argparse._SubParsersAction) -> None:
    w = top.add_parser("weights", help="list, verify, import and inspect model files")
    ws = w.add_subparsers(dest="weights_cmd", required=True)
    ws.add_parser("list", help="models in weights/manifest.json").set_defaults(func=_cmd_weights_list)
    ws.add_parser("verify", help="check every file: verified / missing / mismatch / unreadable").set_defaults(
        func=_cmd_weights_verify)
    p = ws.add_parser("import", help="convert an official checkpoint, check it and register it")
    p.add_argument("paths", nargs="+",
                   help="official file(s), e.g. 100000_nets_ema.ckpt or latest_net_G.pth latest_net_Corr.pth")
    p.add_argument("--as", dest="name", required=True, help="manifest name for the model")
    p.add_argument("--family", required=True, help="stargan2 | cocosnet | panoptic | edgegan")
    p.add_argument("--config", required=True,
                   help="released configuration, e.g. celeba_hq, ade20k, spade_coco, class14")
    p.add_argument("--force", action="store_true", help="replace a model already registered under this name")
    p.set_defaults(func=_cmd_weights_import)
    p = ws.add_parser("keys", help="print the state dict our architecture expects (manifest JSON format)")
    p.add_argument("family")
    p.add_argument("--config", required=True)
    p.add_argument("--tf-names", dest="view", action="store_const", const="tf-names",
                   help="(edgegan) TensorFlow variable names and layouts")
    p.set_defaults(func=_cmd_weights_keys, view=None)
