"""ODISE's prompt-engineered synonyms of the 133 COCO panoptic classes.

The classes themselves (ids, names, colours, thing/stuff) are detectron2's ``COCO_CATEGORIES``;
this table only adds ``{coco category id: synonyms}`` for open-vocabulary classification.
"""
from ._utils import parse_label_lines

__all__ = ["COCO_PANOPTIC_SYNONYMS"]

_LABELS = """
1:person,child,girl,boy,woman,man,people,childeren,girls,boys,women,men,lady,guy,ladies,guys,clothes
2:bicycle,bicycles,bike,bikes
3:car,cars
4:motorcycle,motorcycles
5:airplane,airplanes
6:bus,buses
7:train,trains,locomotive,locomotives,freight train
8:truck,trucks
9:boat,boats
10:traffic light
11:fire hydrant
13:stop sign
14:parking meter
15:bench,benches
16:bird,birds
17:cat,cats,kitties,kitty
18:dog,dogs,puppy,puppies
19:horse,horses,foal
20:sheep
21:cow,cows,calf
22:elephant,elephants
23:bear,bears
24:zebra,zebras
25:giraffe,giraffes
27:backpack,backpacks
28:umbrella,umbrellas
31:handbag,handbags
32:tie
33:suitcase,suitcases
34:frisbee
35:skis
36:snowboard
37:sports ball
38:kite,kites
39:baseball bat
40:baseball glove
41:skateboard
42:surfboard
43:tennis racket
44:bottle,bottles,water bottle
46:wine glass,wine glasses,wineglass
47:cup,cups,water cup,water glass
48:fork,forks
49:knife,knives
50:spoon,spoons
51:bowl,bowls
52:banana,bananas
53:apple,apples,apple fruit
54:sandwich,sandwiches
55:orange fruit
56:broccoli
57:carrot,carrots
58:hot dog
59:pizza
60:donut,donuts
61:cake,cakes
62:chair,chairs
63:couch,sofa,sofas
64:potted plant,potted plants,pottedplant,pottedplants,planter,planters
65:bed,beds
67:dining table,dining tables,diningtable,diningtables,plate,plates,diningtable tablecloth
70:toilet
72:tv
73:laptop
74:mouse
75:tv remote,remote control
76:keyboard
77:cell phone,mobile
78:microwave
79:oven,ovens
80:toaster
81:sink,sinks
82:refrigerator,fridge
84:book,books
85:clock
86:vase,vases
87:scissor,scissors
88:teddy bear,teddy bears
89:hair drier
90:toothbrush,toothbrushes
92:banner,banners
93:blanket,blankets
95:bridge
100:cardboard
107:counter
109:curtain,curtains
112:door,doors
118:wood floor
119:flower,flowers
122:fruit,fruits
125:gravel
128:house
130:lamp,bulb,lamps,bulbs
133:mirror
138:tennis net
141:pillow,pillows
144:platform
145:playingfield,tennis court,baseball feild,soccer field,tennis field
147:railroad
148:river
149:road
151:roof
154:sand
155:sea,sea wave,wave,waves
156:shelf
159:snow
161:stairs
166:tent
168:towel
171:brick wall
175:stone wall
176:tile wall
177:wood wall
178:water
180:window blind
181:window
184:tree,trees,palm tree,bushes
185:fence,fences
186:ceiling
187:sky,clouds
188:cabinet,cabinets
189:table
190:floor,flooring,tile floor
191:pavement
192:mountain,mountains
193:grass
194:dirt
195:paper
196:food
197:building,buildings
198:rock
199:wall,walls
200:rug
"""

COCO_PANOPTIC_SYNONYMS = dict(parse_label_lines(_LABELS))
if len(COCO_PANOPTIC_SYNONYMS) != 133:
    raise AssertionError(f"COCO panoptic synonyms: {len(COCO_PANOPTIC_SYNONYMS)} classes, not 133")
