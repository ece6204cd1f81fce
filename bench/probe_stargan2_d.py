"""What a StarGAN v2 discriminator knows, on held-out faces (issue 12's diagnosis).

For each discriminator given (a ``*.safetensors`` with ``discriminator.*`` tensors: a lent GPU's
returned D, a ``--d-only`` warm-up's checkpoint) and a freshly initialised one (the floor), against the
shipped generator's latent-guided outputs:

* ``real_vs_fake_auc``: how often a real face of domain y outscores an output rendered into y, both on
  head y (0.5: D cannot tell; 1: always);
* ``right_head``: the fraction of real faces that their own domain's head scores above the other
  domain's (0.5: D does not know gender — in the paper's training it never sees a real face on the
  wrong head, so this can only come from outputs that keep the source's gender being called fake;
  ``--lambda-d-domain`` shows it such faces).

    python bench/probe_stargan2_d.py [--data data/faces3_heldout12] [--n 200] [D.safetensors ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import print_table, write_results
from engine.nets import stargan2 as sg
from engine.train.common import he_init
from engine.train.stargan2 import DomainBank
from engine.weights import Manifest, build_and_load, load_strict, read_safetensors, split_subnets


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


@torch.no_grad()
def probe(D: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor, y_fake: torch.Tensor) -> dict:
    D.eval()
    logits = D.domain_logits(x)  # both heads from one pass over the photos
    own, other = sg.pick_domain(logits, y).numpy(), sg.pick_domain(logits, 1 - y).numpy()
    fake_score = D(fake, y_fake).numpy()
    per_domain = [auc(own[y.numpy() == d], fake_score[y_fake.numpy() == d]) for d in (0, 1)]
    return {"real_vs_fake_auc": float(np.mean(per_domain)), "right_head": float((own > other).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("discriminators", nargs="*", help="safetensors files holding discriminator.* tensors")
    ap.add_argument("--data", default="data/faces3_heldout12", help="a faces build never trained on")
    ap.add_argument("--split", default="train")
    ap.add_argument("--n", type=int, default=200, help="faces (half per domain where it can)")
    ap.add_argument("--model", default="stargan2_faces", help="the generator whose outputs are the fakes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="", help="suffix of the results file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    manifest = Manifest()
    entry = manifest.get(args.model)
    nets = build_and_load(entry, manifest)
    domains = sg.domain_names(entry.config)
    data = DomainBank(Path(args.data) / args.split, domains, int(entry.config["img_size"]))
    picks = torch.cat([members[:args.n // 2] for members in data.by_domain])
    x = data.batch(picks, torch.Generator(), augment=False)
    y = data.labels[picks]
    y_fake = 1 - y  # latent-guided into the other domain, as `i2i eval` renders them
    a = sg.network_args(entry.config)
    z = torch.randn(len(picks), a["latent_dim"])  # seeded above
    with torch.no_grad():
        fake = torch.cat([nets["generator"](x[i:i + 32], nets["mapping_network"](z[i:i + 32], y_fake[i:i + 32]))
                          for i in range(0, len(picks), 32)])

    def discriminator() -> torch.nn.Module:
        D = sg.Discriminator(a["img_size"], a["num_domains"], a["max_conv_dim"], a["base_dim"])
        he_init(D)  # the trainer's initialisation: the floor row is a D that has not trained
        return D

    rows = [{"discriminator": "fresh (He init): the floor", **probe(discriminator(), x, y, fake, y_fake)}]
    for path in args.discriminators:
        D = discriminator()
        state = split_subnets(read_safetensors(Path(path)))
        load_strict({"discriminator": D}, {"discriminator": {k: t.float() for k, t in state["discriminator"].items()}},
                    source=path)
        rows.append({"discriminator": path, **probe(D, x, y, fake, y_fake)})
    print(f"{len(picks)} faces of {args.data}/{args.split}; fakes: {args.model}, latent-guided into the "
          f"other domain")
    print_table(rows, ["discriminator", "real_vs_fake_auc", "right_head"])
    name = "stargan2_discriminator_probe" + (f"_{args.tag}" if args.tag else "")
    out = write_results(name, {"data": f"{args.data}/{args.split}", "n": len(picks), "generator": args.model,
                               "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
