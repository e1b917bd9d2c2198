"""PASCAL-Context 59-class benchmark (PC-59).

The 59 classes are a subset of the full label set: ``context_id`` is the class value in the
official ``trainval/*.mat`` label maps (see ``pascal_context_459.py``). Contiguous ``id`` (the
value in ``annotations_ctx59/*.png``) is the rank of ``context_id`` among the 59, i.e. classes in
increasing ``context_id`` order; every other pixel (background and the other 400 classes) is
ignored (255). ``name`` is the benchmark's class name, ``synonyms`` ODISE's prompt-engineered
list; colours are ADE20K palette colours 1..59, as in ODISE (display only).
"""
from ._utils import check_count, parse_synonyms
from .ade20k_150 import ADE20K_150_CATEGORIES

__all__ = ["PASCAL_CONTEXT_59_CATEGORIES"]

# (context_id, name, ODISE synonyms)
_TABLE = [
    (2, "aeroplane", "aeroplane,aeroplanes,airplanes,airplane"),
    (9, "bag", "bag,bags"),
    (18, "bed", "bed,beds"),
    (19, "bedclothes", "bedclothes"),
    (22, "bench", "bench,benches"),
    (23, "bicycle", "bicycle,bicycles"),
    (25, "bird", "bird,birds"),
    (31, "boat", "boat,boats"),
    (33, "book", "book,books"),
    (34, "bottle", "bottle,bottles,water bottle"),
    (44, "building", "building,buildings"),
    (45, "bus", "bus,buses"),
    (46, "cabinet", "cabinet,cabinets,drawer,drawers"),
    (59, "car", "car,cars"),
    (65, "cat", "cat,cats,kitties,kitty"),
    (68, "ceiling", "ceiling"),
    (72, "chair", "chair,chairs"),
    (80, "cloth", "cloth,clothes"),
    (85, "computer", "computer case"),
    (98, "cow", "cow,cows"),
    (104, "cup", "cup,cups"),
    (105, "curtain", "curtain,curtains"),
    (113, "dog", "dog,dogs,puppy,puppies"),
    (115, "door", "door,doors"),
    (144, "fence", "fence,fences"),
    (158, "floor", "floor,tile ground,carpet,rug,flooring"),
    (159, "flower", "flower,flowers"),
    (162, "food", "food"),
    (187, "grass", "grass,grasses,lawn,turf"),
    (189, "ground", "ground,soil,soil ground,dirt ground"),
    (207, "horse", "horse,horses,foal"),
    (220, "keyboard", "keyboard,keyboards"),
    (232, "light", "lamp,lamps,bulb,bulbs"),
    (258, "motorbike", "motorbike,motorcycle,motorbikes,motorcycles"),
    (259, "mountain", "mountain,mountains"),
    (260, "mouse", "mouse"),
    (284, "person", "person,child,girl,boy,woman,man,people,childeren,girls,boys,women,men,"
                    "lady,guy,ladies,guys"),
    (295, "plate", "plate,plates"),
    (296, "platform", "platform,platforms"),
    (308, "pottedplant", "pottedplant,pottedplants,plant pot,plant pots,planter,planters"),
    (324, "road", "street,streets"),
    (326, "rock", "rock,rocks,stone,stones"),
    (347, "sheep", "sheep"),
    (349, "shelves", "shelves,shelf"),
    (354, "sidewalk", "sidewalk"),
    (355, "sign", "sign,signs"),
    (360, "sky", "sky,clouds"),
    (366, "snow", "snow"),
    (368, "sofa", "sofa"),
    (397, "diningtable", "diningtable,diningtables,table,tables,desk,desks,side table,"
                         "side tables,coffee table"),
    (415, "track", "track,train track,railroad"),
    (416, "train", "train,trains,locomotive,locomotives,freight train"),
    (420, "tree", "tree,trees"),
    (424, "truck", "truck,trucks"),
    (427, "tvmonitor", "tvmonitor,monitor,tv"),
    (440, "wall", "wall,walls"),
    (445, "water", "water"),
    (454, "window", "window,windows"),
    (458, "wood", "wood piece"),
]

PASCAL_CONTEXT_59_CATEGORIES = [
    {
        "id": i,
        "name": name,
        "context_id": context_id,
        "color": list(ADE20K_150_CATEGORIES[i + 1]["color"]),
        "synonyms": parse_synonyms(synonyms),
    }
    for i, (context_id, name, synonyms) in enumerate(_TABLE)
]
check_count(PASCAL_CONTEXT_59_CATEGORIES, 59, "PASCAL-Context-59")
