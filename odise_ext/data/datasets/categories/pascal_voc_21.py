"""PASCAL VOC 2012 semantic segmentation, 21 classes including background (VOC-21 / PAS-21).

``id`` is the class index of the official ``SegmentationClass`` palette PNGs (0 = background,
255 = void border, ignored). ``synonyms`` is ODISE's prompt-engineered list: its "background"
class is a union of common stuff names, since VOC's background holds everything unlabelled.
Colours are the VOC devkit colormap.
"""
from ._utils import check_count, parse_synonyms

__all__ = ["PASCAL_VOC_21_CATEGORIES", "voc_colormap"]

_BACKGROUND = (
    "background,crops,bush,shrub,tiles,pavement,rug,carpet,box,boxes,speaker,storage,painting,"
    "board,panel,poster,clock,cage,drinking glass,park,plaything,toy,fireplace,bag,bag,bed,bench,"
    "book,books,building,buildings,cabinet,drawer,ceiling,computer,computer case,cup,cups,door,"
    "fence,floor,flower,grass,lawn,turf,ground,soil,dirt,tiles,keyboard,lamp,mountain,hills,mouse,"
    "curtain,platform,sign,street,rock,stone,shelf,sidewalk,sky,clouds,snow,track,train track,"
    "tree,trees,wall,water,window,wood,woods"
)

# (name, ODISE synonyms)
_TABLE = [
    ("background", _BACKGROUND),
    ("aeroplane", "aeroplane,airplane,aeroplanes,airplanes"),
    ("bicycle", "bicycle,bicycles,bike,bikes"),
    ("bird", "bird,birds"),
    ("boat", "boat,boats"),
    ("bottle", "bottle,bottles,water bottle"),
    ("bus", "bus,buses"),
    ("car", "car,cars"),
    ("cat", "cat,cats,kitties,kitty"),
    ("chair", "chair,chairs"),
    ("cow", "cow,cows,calf"),
    ("diningtable", "diningtable,dining table,diningtables,dining tables,plate,plates"),
    ("dog", "dog,dogs,puppy,puppies"),
    ("horse", "horse,horses,foal"),
    ("motorbike", "motorbike,motorcycle,motorbikes,motorcycles"),
    ("person", "person,child,girl,boy,woman,man,people,childeren,girls,boys,women,men,lady,guy,"
               "ladies,guys,clothes"),
    ("pottedplant", "pottedplant,pottedplants,plant pot,plant pots,planter,planters"),
    ("sheep", "sheep"),
    ("sofa", "sofa,sofas"),
    ("train", "train,trains,locomotive,locomotives,freight train"),
    ("tvmonitor", "tvmonitor,monitor,tv"),
]


def voc_colormap(num_classes: int):
    """The VOC devkit colormap: bits of the class index spread over R, G, B from the MSB."""
    colors = []
    for i in range(num_classes):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors.append([r, g, b])
    return colors


_COLORS = voc_colormap(len(_TABLE))

PASCAL_VOC_21_CATEGORIES = [
    {"id": i, "name": name, "color": _COLORS[i], "synonyms": parse_synonyms(synonyms)}
    for i, (name, synonyms) in enumerate(_TABLE)
]
check_count(PASCAL_VOC_21_CATEGORIES, 21, "PASCAL-VOC-21")
