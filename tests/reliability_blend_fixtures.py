"""Build the .blend files from the wild that tests/test_reliability_blender.py feeds to the importer.

Run as a script in its own process (``python reliability_blend_fixtures.py OUT_DIR``): some of these
files leave state behind in the bpy session that builds them (a Python driver is evaluated while the
file is made), which must never reach the pytest process. Each file holds one valid program object
(``Program``: a geometry-nodes modifier over a cube whose ``Size`` input is a parameter) plus its oddity.
Scripts that would write a file named ``RAN_<fixture>`` in OUT_DIR are embedded where the oddity is a
script: the tests check that none of those files ever appears.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

FIXTURES = (
    "driver_python",  # a driver whose expression is Python (refused: auto-run is off)
    "driver_on_input",  # a Python driver on the modifier's own input value
    "text_module",  # a text block registered as a module (runs on load only with auto-run)
    "missing_library",  # a node group linked from a .blend that no longer exists, used by the program
    "missing_library_unused",  # an object linked from a missing .blend, next to a local program
    "two_programs",  # two objects with geometry-nodes modifiers
    "compressed",  # saved compressed (zstd, as Blender 3+ writes it)
    "unsupported_nodes",  # unsupported nodes in two trees, plus a frame and reroutes
    "not_a_blend",  # a text file named .blend
    "empty",  # a 0-byte .blend
    "truncated",  # the first half of a valid .blend
)


def _reset() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def _program(name: str = "Program", tree_name: str = "Main", group=None):
    """An object with a geometry-nodes modifier over a cube of parameter ``Size`` (optionally via ``group``)."""
    tree = bpy.data.node_groups.new(tree_name, "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    size = tree.interface.new_socket("Size", in_out="INPUT", socket_type="NodeSocketFloat")
    size.default_value, size.min_value, size.max_value = 1.0, 0.1, 3.0
    gin, gout = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    comb = tree.nodes.new("ShaderNodeCombineXYZ")
    cube = tree.nodes.new("GeometryNodeMeshCube")
    tree.links.new(gin.outputs["Size"], comb.inputs["X"])
    tree.links.new(comb.outputs[0], cube.inputs["Size"])
    last = cube.outputs["Mesh"]
    if group is not None:
        node = tree.nodes.new("GeometryNodeGroup")
        node.node_tree = group
        tree.links.new(last, node.inputs[0])
        last = node.outputs[0]
    tree.links.new(last, gout.inputs[0])
    obj = bpy.data.objects.new(name, bpy.data.meshes.new(name))
    bpy.context.scene.collection.objects.link(obj)
    mod = obj.modifiers.new("GN", "NODES")
    mod.node_group = tree
    return obj, mod, tree


def _marker_code(out: Path, fixture: str) -> str:
    return f"__import__('pathlib').Path({str(out / ('RAN_' + fixture))!r}).write_text('ran')"


def _save(path: Path, **kw) -> None:
    bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False, **kw)


def _pass_through_group(name: str):
    group = bpy.data.node_groups.new(name, "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    gi, go = group.nodes.new("NodeGroupInput"), group.nodes.new("NodeGroupOutput")
    group.links.new(gi.outputs[0], go.inputs[0])
    return group


def build(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)

    _reset()
    obj, _, _ = _program()
    fc = obj.driver_add("location", 0)
    fc.driver.type = "SCRIPTED"
    fc.driver.expression = _marker_code(out, "driver_python") + " or 0.0"
    _save(out / "driver_python.blend")

    _reset()
    obj, mod, tree = _program()
    ident = next(i.identifier for i in tree.interface.items_tree if getattr(i, "name", "") == "Size")
    fc = obj.driver_add(f'modifiers["{mod.name}"]["{ident}"]')
    fc.driver.type = "SCRIPTED"
    fc.driver.expression = _marker_code(out, "driver_on_input") + " or 2.0"
    _save(out / "driver_on_input.blend")

    _reset()
    _program()
    text = bpy.data.texts.new("autorun.py")
    text.write(_marker_code(out, "text_module") + "\n")
    text.use_module = True  # "Register": run when the file loads, if auto-run were on
    _save(out / "text_module.blend")

    lib = out / "library_gone.blend"
    _reset()
    _pass_through_group("Shared Group").use_fake_user = True  # else unused, not saved
    ob = bpy.data.objects.new("Shared Object", bpy.data.meshes.new("Shared Mesh"))
    bpy.context.scene.collection.objects.link(ob)
    _save(lib)
    _reset()
    with bpy.data.libraries.load(str(lib), link=True) as (src, dst):
        dst.node_groups = ["Shared Group"]
    _program(group=bpy.data.node_groups["Shared Group"])
    _save(out / "missing_library.blend")
    _reset()
    with bpy.data.libraries.load(str(lib), link=True) as (src, dst):
        dst.objects = ["Shared Object"]
    bpy.context.scene.collection.objects.link(dst.objects[0])
    _program()
    _save(out / "missing_library_unused.blend")
    lib.unlink()

    _reset()
    _program("Program")
    _program("Other Program", "Other")
    _save(out / "two_programs.blend")

    _reset()
    _program()
    _save(out / "compressed.blend", compress=True)

    _reset()
    _, _, main = _program()
    legs = _pass_through_group("Legs")
    for i, (tree, kind) in enumerate(((main, "GeometryNodeSetPosition"), (main, "GeometryNodeSubdivideMesh"),
                                      (legs, "GeometryNodeMeshToPoints"))):
        node = tree.nodes.new(kind)
        node.name = f"Odd {i}"
    main.nodes.new("NodeFrame")
    main.nodes.new("NodeReroute")
    legs.nodes.new("NodeReroute")
    node = main.nodes.new("GeometryNodeGroup")
    node.node_tree = legs
    _save(out / "unsupported_nodes.blend")

    (out / "not_a_blend.blend").write_text("this is a text file, not a .blend\n")
    (out / "empty.blend").write_bytes(b"")
    whole = (out / "compressed.blend").read_bytes()
    _reset()
    _program()
    _save(out / "plain.blend")
    plain = (out / "plain.blend").read_bytes()
    (out / "truncated.blend").write_bytes(plain[: len(plain) // 2])
    assert whole[:4] != b"BLEN"  # zstd frame, not a plain .blend header
    _reset()  # leave nothing of the drivers behind (the builder exits promptly too)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
    print("built", len(FIXTURES), "fixtures")
