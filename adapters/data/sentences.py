"""Training sentences written by the project: templates × word lists, deterministic for a seed.

Five kinds, so the model hears commands, questions, statements, numbers and names:
assistant commands, questions (some with a known answer, which become "Answer the question."
examples), everyday statements, digit strings and times, and sentences built around people's and
places' names. Numbers are written as words, as a speaker says them; transcript comparison turns
digits into words on both sides (adapters.runtime.text.normalize), so "7" and "seven" agree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from adapters.runtime.text import number_words

ANSWER_INSTRUCTION = "Answer the question."

NAMES = """Alice Bob Carol David Emma Frank Grace Henry Isabel Jack Karen Liam Maria Noah Olivia Peter Quinn
Rachel Samuel Tina Victor Wendy Xavier Yvonne Zach Sophia James Lucas Mia Ethan Chloe Daniel Hannah Oscar Ruby
Thomas Laura Martin Nina George Julia Adam Eva Simon Clara Robert Helen Kevin Anna Michael Sarah""".split()
SURNAMES = """Smith Johnson Brown Taylor Miller Wilson Moore Anderson Thomas Jackson White Harris Martin Thompson
Garcia Clark Lewis Walker Young Allen King Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell""".split()
CITIES = """London Paris Berlin Madrid Rome Tokyo Boston Chicago Denver Seattle Dublin Vienna Prague Oslo Lisbon
Sydney Toronto Houston Phoenix Atlanta Miami Amsterdam Brussels Warsaw Athens Cairo Nairobi Mumbai Seoul Lima""".split()
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Spain": "Madrid", "Italy": "Rome", "Japan": "Tokyo",
    "Ireland": "Dublin", "Austria": "Vienna", "Norway": "Oslo", "Portugal": "Lisbon", "Poland": "Warsaw",
    "Greece": "Athens", "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Canada": "Ottawa",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen", "Russia": "Moscow", "China": "Beijing",
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = """January February March April May June July August September October November December""".split()
ROOMS = ["kitchen", "living room", "bedroom", "bathroom", "office", "hallway", "garage", "dining room", "basement"]
DEVICES = ["lights", "heater", "fan", "television", "radio", "air conditioner", "lamp", "coffee machine", "speaker"]
GENRES = ["jazz", "rock", "classical", "country", "pop", "blues", "reggae", "folk", "hip hop", "piano"]
FOODS = """apples bananas bread milk eggs cheese rice pasta tomatoes onions carrots coffee tea butter yogurt chicken
potatoes oranges lemons cereal soup beans honey sugar flour""".split()
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "pink", "gray"]
ANIMALS = ["dog", "cat", "horse", "bird", "rabbit", "fox", "cow", "sheep", "duck", "mouse", "lion", "bear"]
PLACES = ["library", "museum", "bank", "pharmacy", "post office", "supermarket", "train station", "airport",
          "hospital", "cinema", "gym", "bakery", "park", "school", "restaurant", "hotel"]
TASKS = ["buy milk", "call the dentist", "water the plants", "pay the rent", "book a table", "feed the cat",
         "send the report", "pick up the kids", "take out the trash", "check the oven", "renew my passport",
         "return the library books", "charge my phone", "lock the back door", "walk the dog"]
WHEN = ["tomorrow", "tonight", "this evening", "next week", "on Monday", "on Friday", "this afternoon",
        "in the morning", "after lunch", "before dinner", "at noon", "later today", "next month"]
APPS = ["calendar", "camera", "calculator", "music player", "map", "browser", "settings", "email", "weather app"]
ADJ = ["quiet", "busy", "cold", "warm", "bright", "dark", "small", "large", "old", "new", "clean", "empty", "noisy"]
NOUNS = ["house", "car", "garden", "street", "window", "table", "train", "river", "bridge", "book", "room", "shop"]
OPPOSITES = {"hot": "cold", "big": "small", "up": "down", "fast": "slow", "happy": "sad", "light": "dark",
             "early": "late", "open": "closed", "old": "young", "loud": "quiet"}


@dataclass(frozen=True)
class Sentence:
    text: str
    kind: str
    response: str | None = None  # the answer, for questions that have one

    @property
    def instruction(self) -> str | None:
        return ANSWER_INSTRUCTION if self.response is not None else None


def _time(r: random.Random) -> str:
    h, m = r.randint(1, 12), r.choice([0, 5, 10, 15, 20, 30, 40, 45, 50])
    minutes = "o'clock" if m == 0 else number_words(m)
    return f"{number_words(h)} {minutes}"


def _digits(r: random.Random, n: int) -> str:
    return " ".join(number_words(r.randint(0, 9)) for _ in range(n))


def _command(r: random.Random) -> str:
    forms = [
        lambda: f"turn {r.choice(['on', 'off'])} the {r.choice(ROOMS)} {r.choice(DEVICES)}",
        lambda: f"set a timer for {number_words(r.randint(1, 60))} minutes",
        lambda: f"play some {r.choice(GENRES)} music",
        lambda: f"call {r.choice(NAMES)} {r.choice(WHEN)}",
        lambda: f"remind me to {r.choice(TASKS)} {r.choice(WHEN)}",
        lambda: f"send a message to {r.choice(NAMES)} saying I will be {r.choice(['late', 'there soon', 'home at ' + _time(r)])}",
        lambda: f"add {r.choice(FOODS)} and {r.choice(FOODS)} to the shopping list",
        lambda: f"set the thermostat to {number_words(r.randint(15, 28))} degrees",
        lambda: f"open the {r.choice(APPS)}",
        lambda: f"wake me up at {_time(r)}",
        lambda: f"navigate to the nearest {r.choice(PLACES)}",
        lambda: f"dim the {r.choice(ROOMS)} lights to {number_words(r.choice([10, 20, 30, 40, 50, 60, 70, 80, 90]))} percent",
        lambda: f"please {r.choice(['stop', 'pause', 'resume', 'skip'])} the {r.choice(['music', 'song', 'podcast', 'video'])}",
        lambda: f"book a table for {number_words(r.randint(2, 8))} at {_time(r)}",
        lambda: f"turn the volume {r.choice(['up', 'down'])} a little",
    ]
    return r.choice(forms)()


def _question(r: random.Random) -> tuple[str, str | None]:
    a, b = r.randint(1, 20), r.randint(1, 20)
    country = r.choice(list(CAPITALS))
    day = r.randrange(7)
    word = r.choice(list(OPPOSITES))
    forms = [
        lambda: (f"what is {number_words(a)} plus {number_words(b)}", number_words(a + b)),
        lambda: (f"what is {number_words(max(a, b))} minus {number_words(min(a, b))}", number_words(max(a, b) - min(a, b))),
        lambda: (f"what is the capital of {country}", CAPITALS[country]),
        lambda: (f"what day comes after {DAYS[day]}", DAYS[(day + 1) % 7]),
        lambda: (f"what is the opposite of {word}", OPPOSITES[word]),
        lambda: (f"what is the weather like in {r.choice(CITIES)} {r.choice(WHEN)}", None),
        lambda: (f"how far is {r.choice(CITIES)} from {r.choice(CITIES)}", None),
        lambda: (f"what time does the {r.choice(PLACES)} open on {r.choice(DAYS)}", None),
        lambda: (f"can you recommend a good {r.choice(['Italian', 'Chinese', 'Indian', 'Mexican', 'French'])} restaurant", None),
        lambda: (f"is it going to rain in {r.choice(CITIES)} {r.choice(WHEN)}", None),
        lambda: (f"where did I put my {r.choice(['keys', 'glasses', 'wallet', 'phone', 'umbrella'])}", None),
        lambda: (f"how do you spell {r.choice(NAMES)}", None),
        lambda: (f"who is calling me from {r.choice(CITIES)}", None),
        lambda: (f"do we have any {r.choice(FOODS)} left", None),
    ]
    return r.choice(forms)()


def _statement(r: random.Random) -> str:
    forms = [
        lambda: f"{r.choice(NAMES)} is flying to {r.choice(CITIES)} {r.choice(WHEN)}",
        lambda: f"the meeting starts at {_time(r)}",
        lambda: f"my favorite color is {r.choice(COLORS)}",
        lambda: f"I would like {number_words(r.randint(2, 12))} {r.choice(FOODS)} please",
        lambda: f"the {r.choice(ANIMALS)} is sleeping under the {r.choice(['table', 'bed', 'tree', 'car', 'bench'])}",
        lambda: f"the {r.choice(NOUNS)} was {r.choice(ADJ)} and {r.choice(ADJ)}",
        lambda: f"we are meeting at the {r.choice(PLACES)} {r.choice(WHEN)}",
        lambda: f"the train to {r.choice(CITIES)} leaves at {_time(r)}",
        lambda: f"I left my {r.choice(['keys', 'bag', 'coat', 'phone'])} in the {r.choice(ROOMS)}",
        lambda: f"it is {r.choice(ADJ)} outside today",
        lambda: f"the {r.choice(COLORS)} {r.choice(NOUNS)} is next to the {r.choice(PLACES)}",
        lambda: f"thank you for calling, {r.choice(NAMES)} will be with you shortly",
        lambda: f"the package will arrive on {r.choice(DAYS)}",
        lambda: f"my birthday is on the {r.choice(['first', 'third', 'fifth', 'tenth', 'twelfth', 'twentieth'])} of {r.choice(MONTHS)}",
        lambda: f"there are {number_words(r.randint(2, 99))} people waiting outside",
    ]
    return r.choice(forms)()


def _numbers(r: random.Random) -> str:
    forms = [
        lambda: f"my phone number is {_digits(r, 3)} {_digits(r, 4)}",
        lambda: f"the code is {_digits(r, r.randint(4, 6))}",
        lambda: f"please transfer {number_words(r.randint(10, 999))} dollars to my savings account",
        lambda: f"the total comes to {number_words(r.randint(2, 99))} dollars and {number_words(r.randint(1, 99))} cents",
        lambda: f"room {number_words(r.randint(100, 599))} is on the {r.choice(['first', 'second', 'third', 'fourth', 'fifth'])} floor",
        lambda: f"she was born in {r.choice(MONTHS)} {number_words(r.randint(1950, 2020), year=True)}",
        lambda: f"the flight number is {r.choice(['A', 'B', 'C', 'K', 'L'])} {_digits(r, 3)}",
    ]
    return r.choice(forms)()


def _names(r: random.Random) -> str:
    first, last, other = r.choice(NAMES), r.choice(SURNAMES), r.choice(NAMES)
    forms = [
        lambda: f"my name is {first} {last}",
        lambda: f"{first} {last} lives in {r.choice(CITIES)}",
        lambda: f"please ask {first} to call {other} back",
        lambda: f"{first} and {other} went to the {r.choice(PLACES)}",
        lambda: f"doctor {last} will see you {r.choice(WHEN)}",
        lambda: f"this is a message for {first} from {other} {last}",
    ]
    return r.choice(forms)()


def generate(n: int, seed: int = 0) -> list[Sentence]:
    """n distinct sentences, in a deterministic order for the seed."""
    r = random.Random(seed)
    seen: set[str] = set()
    out: list[Sentence] = []
    kinds = ["command"] * 3 + ["question"] * 3 + ["statement"] * 3 + ["numbers"] + ["names"] * 2
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > n * 50:
            raise ValueError(f"only {len(out)} distinct sentences could be generated (asked for {n})")
        kind = r.choice(kinds)
        response = None
        if kind == "command":
            text = _command(r)
        elif kind == "question":
            text, response = _question(r)
        elif kind == "statement":
            text = _statement(r)
        elif kind == "numbers":
            text = _numbers(r)
        else:
            text = _names(r)
        text = text[0].upper() + text[1:] + ("?" if kind == "question" else ".")
        if text in seen:
            continue
        seen.add(text)
        out.append(Sentence(text, kind, response))
    return out
