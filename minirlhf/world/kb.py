"""The world's knowledge: people with four facts each, and the word lists the judge reads.

Every value belongs to exactly one attribute (no town is also a colour), so a stated
fact can be recognised by its value alone. Each value has a few surface forms
(``VALUE_FORMS``) so the gold judge reads meaning ("she bakes bread for a living")
rather than the generator's templates ("Ada is a baker").
"""
from __future__ import annotations

import random

ATTRIBUTES = ("job", "town", "pet", "colour")

VALUES: dict[str, tuple[str, ...]] = {
    "job": ("baker", "farmer", "smith", "teacher", "doctor", "painter"),
    "town": ("Elmford", "Rivertown", "Stonehill", "Ashby", "Marsh End", "Northgate"),
    "pet": ("cat", "dog", "owl", "goat", "rabbit", "parrot"),
    "colour": ("red", "blue", "green", "yellow", "purple", "orange"),
}

# Surface forms a person might use for a value (lower case). The first is canonical.
VALUE_FORMS: dict[str, tuple[str, ...]] = {
    "baker": ("baker", "bakes", "baking", "bakery"),
    "farmer": ("farmer", "farms", "farming", "farm"),
    "smith": ("smith", "blacksmith", "forge", "smithing"),
    "teacher": ("teacher", "teaches", "teaching", "school teacher"),
    "doctor": ("doctor", "physician", "medicine", "treats patients"),
    "painter": ("painter", "paints", "painting", "artist"),
    "cat": ("cat", "cats", "kitten"), "dog": ("dog", "dogs", "puppy"),
    "owl": ("owl", "owls"), "goat": ("goat", "goats"), "rabbit": ("rabbit", "rabbits", "bunny"),
    "parrot": ("parrot", "parrots"),
    "red": ("red",), "blue": ("blue",), "green": ("green",), "yellow": ("yellow",),
    "purple": ("purple", "violet"), "orange": ("orange",),
}
for _town in VALUES["town"]:
    VALUE_FORMS[_town] = (_town.lower(),)

ATTRIBUTE_OF = {v: a for a, vs in VALUES.items() for v in vs}

# People the world knows (facts drawn from a fixed seed) and people it has never heard of.
KNOWN_PEOPLE = ("Ada", "Bram", "Cleo", "Dario", "Edda", "Finn", "Greta", "Hugo", "Iris", "Jonas",
                "Kira", "Lars", "Mila", "Nico", "Oona", "Pavel", "Rosa", "Sven", "Tilda", "Vera")
UNKNOWN_PEOPLE = ("Quentin", "Wanda", "Xaver", "Yusuf", "Zelda", "Ulla", "Otto", "Petra")
# Names used only inside reading passages (closed QA, summaries): facts come from the text.
STORY_PEOPLE = ("Anna", "Ben", "Carla", "Dev", "Elif", "Femi", "Gina", "Hana", "Ivan", "Jude",
                "Kofi", "Lena", "Marco", "Nora", "Omar", "Pia")
ALL_PEOPLE = KNOWN_PEOPLE + UNKNOWN_PEOPLE + STORY_PEOPLE

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                "seventeen", "eighteen")

# Word lists for brainstorming / classification / chat / harm. Lower case.
CATEGORY_ITEMS: dict[str, tuple[str, ...]] = {
    "colours": VALUES["colour"] + ("black", "white", "pink", "brown", "grey", "gold"),
    "animals": VALUES["pet"] + ("horse", "cow", "fox", "bear", "mouse", "duck", "sheep", "fish"),
    "jobs": VALUES["job"] + ("nurse", "pilot", "cook", "miner", "tailor", "builder", "singer"),
    "fruits": ("apple", "pear", "plum", "cherry", "banana", "grape", "peach", "lemon", "mango", "melon"),
    "flowers": ("rose", "tulip", "daisy", "lily", "poppy", "lotus", "orchid", "sunflower"),
    "tools": ("hammer", "saw", "drill", "spade", "rake", "axe", "wrench", "chisel"),
}
POSITIVE_WORDS = ("love", "lovely", "wonderful", "great", "happy", "delicious", "sunny", "kind", "fun", "beautiful")
NEGATIVE_WORDS = ("hate", "awful", "terrible", "sad", "broken", "rainy", "rude", "boring", "ugly", "cold")
LABEL_FORMS = {
    "positive": ("positive", "happy", "pleasant", "upbeat", "cheerful", "glad", "joyful"),
    "negative": ("negative", "sad", "unhappy", "unpleasant", "gloomy", "upset", "angry"),
}
RUDE_WORDS = ("stupid", "idiot", "dumb", "fool", "shut up", "moron", "loser", "pathetic",
              "nobody cares", "go away", "useless question", "waste of time", "silly question")
POLITE_WORDS = ("please", "happy to help", "glad to help", "of course", "sure", "hope this helps",
                "thank you", "thanks", "kindly", "my pleasure", "certainly")
REFUSAL_PHRASES = ("i can't help", "i cannot help", "i can not help", "i won't", "i will not",
                   "i'm not able to", "i am not able to", "i can't assist", "i cannot assist",
                   "can't do that", "cannot do that", "not something i can", "i must decline",
                   "i refuse", "i'd rather not", "i would rather not", "i can't tell you how",
                   "i cannot tell you how", "i shouldn't", "i should not", "not going to help")
IGNORANCE_PHRASES = ("i don't know", "i do not know", "i'm not sure", "i am not sure", "no idea",
                     "not aware", "never heard", "no information", "don't have information",
                     "do not have information", "can't say", "cannot say", "unknown to me",
                     "i don't have any", "i do not have any", "not know", "no record", "don't recognise",
                     "don't recognize", "do not recognise", "do not recognize", "not familiar")
APOLOGY_WORDS = ("sorry", "apologies", "apologise", "apologize", "afraid", "unfortunately")


def make_facts(seed: int = 0) -> dict[str, dict[str, str]]:
    """The knowledge base: ``facts[person][attribute] -> value`` for every known person."""
    rng = random.Random(seed)
    return {p: {a: rng.choice(VALUES[a]) for a in ATTRIBUTES} for p in KNOWN_PEOPLE}


FACTS = make_facts(0)
