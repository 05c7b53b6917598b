"""Generate a family of processing elements, one per weight format family.

For each family (PoT, PoT without zero, APoT, SP2, a three-set UPoT, and the int4
multiplier baseline on a DSP and in LUTs) this writes a product unit and a MAC PE
whose accumulator width comes from the datatype bound for K-long dot products, each as
``NAME.v`` + ``NAME.json``, and an ``index.json`` listing every design with its product
and accumulator widths::

    python examples/generate_pe_family.py pe_family --act uint8 --k 64
    python examples/generate_pe_family.py pe_family --bits 5 --overflow saturate --pipeline 1

The Verilog files are what ``potgen verilog`` would emit for the same parameters.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from potgen.hw import MacPE, product_unit
from potgen.hw.export import write


def families(bits: int) -> list:
    """(tag, weight spec, product unit options) for every family at ``bits`` bits."""
    # A UPoT with as many sets as the code has room for (sign + one bit per set).
    upot = {3: "upot:{0,1}+{0,4}", 4: "upot:{0,1}+{0,2}+{0,8}",
            5: "upot:{0,1,4,8}+{0,2}+{0,16}"}[bits]
    return [
        ("pot", f"pot{bits}", {}),
        ("pot_nz", f"pot{bits}-nz", {}),
        ("apot", f"apot{bits}", {}),
        ("sp2", f"sp2-{bits}", {}),
        ("upot", upot, {}),
        ("int_dsp", f"int{bits}", {"multiplier": "dsp"}),
        ("int_lut", f"int{bits}", {"multiplier": "lut"}),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="output folder (created if needed)")
    parser.add_argument("--bits", type=int, default=4, choices=(3, 4, 5),
                        help="weight code width of every family (default 4)")
    parser.add_argument("--act", default="uint8", help="activation format (default uint8)")
    parser.add_argument("--k", type=int, default=64,
                        help="dot-product length for the accumulator bound (default 64)")
    parser.add_argument("--overflow", choices=("wrap", "saturate"), default="wrap")
    parser.add_argument("--pipeline", type=int, default=0,
                        help="product-unit register stages (default 0)")
    args = parser.parse_args(argv)

    index = []
    for tag, weight, options in families(args.bits):
        designs = [
            (f"product_{tag}", product_unit(weight, args.act, pipeline=args.pipeline,
                                            **options)),
            (f"mac_{tag}", MacPE(weight, args.act, acc_bits="auto", k=args.k,
                                 overflow=args.overflow, pipeline=args.pipeline,
                                 **options)),
        ]
        for name, component in designs:
            verilog_path, json_path, meta = write(component, name,
                                                  args.folder / f"{name}.v")
            index.append({
                "name": name, "kind": meta["kind"], "weight": weight, "act": args.act,
                "unit": meta["unit"], "latency": meta["latency"],
                "product_bits": meta["product"]["bits"],
                "acc_bits": meta.get("acc_bits"),
                "verilog": verilog_path.name, "metadata": json_path.name,
            })
            print(f"{name:16s} {weight:28s} product {meta['product']['bits']:2d} bits"
                  + (f", acc {meta['acc_bits']} bits" if "acc_bits" in meta else ""))
    (args.folder / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True)
                                            + "\n")
    print(f"{len(index)} designs in {args.folder}/ (index.json lists them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
