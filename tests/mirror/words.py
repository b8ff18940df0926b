"""Word pools for the synthetic articles. All text here is invented for the mirror."""

from __future__ import annotations

#: 24 distinct places: the article published in hour slot ``h`` of a day names a different
#: place than every other article of that day, so slugs never collide within a day.
PLACES = (
    "Lisbon", "Tallinn", "Nairobi", "Osaka", "Quito", "Dakar", "Tbilisi", "Oslo",
    "Valletta", "Hanoi", "Cusco", "Tunis", "Bergen", "Perth", "Windhoek", "Riga",
    "Leipzig", "Tromso", "Zagreb", "Accra", "Mendoza", "Bilbao", "Kochi", "Tampere",
)  # fmt: skip

SUBJECTS = (
    "City Council", "Harbor Authority", "Regional Bank", "Rail Union", "Farmers' Cooperative",
    "Museum", "Water Board", "School District", "Tech Start-Up", "Ferry Company",
    "Coastal Village", "Hospital", "Chess Federation", "Orchestra", "Bakers' Guild",
    "Bridge Commission", "Weather Service", "Library Board", "Cycling Club", "Fishing Fleet",
)  # fmt: skip

VERBS = (
    "Weighs", "Rejects", "Embraces", "Delays", "Revives", "Questions", "Expands",
    "Rethinks", "Debates", "Quietly Ends", "Doubles Down on", "Pauses",
)  # fmt: skip

OBJECTS = (
    "a Plan for Night Trains", "New Rules on Rooftop Gardens", "a Tax on Empty Shops",
    "a Bid to Rebuild the Old Pier", "Longer Hours for Public Pools",
    "a Ban on Leaf Blowers", "a Deal Over River Rights", "Cheaper Bus Fares",
    "a Festival of Lanterns", "the Search for a Lost Manuscript",
    "a Budget for Flood Walls", "Four-Day School Weeks", "a Merger of Two Ports",
    "Limits on Short-Term Rentals", "a Vote on a New Stadium", "Solar Panels on Churches",
)  # fmt: skip

FIRST_NAMES = (
    "Alma", "Bruno", "Carys", "Dario", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Kalina", "Luca", "Mirela", "Noor", "Oskar", "Paloma", "Quentin", "Rosa", "Soren",
    "Talia", "Umar", "Vera", "Wendell", "Yara",
)  # fmt: skip

LAST_NAMES = (
    "Abernathy", "Brandt", "Castellanos", "Dufresne", "Eklund", "Fairweather", "Galloway",
    "Halvorsen", "Ibarra", "Jovanovic", "Kessler", "Lindqvist", "Marchetti", "Nakashima",
    "Okonkwo", "Pettersen", "Quintero", "Rasmussen", "Saltzman", "Thornbury", "Underhill",
    "Valderrama", "Whitcombe", "Zielinski",
)  # fmt: skip

ORGS = (
    "the port authority", "a coalition of shop owners", "the regional parliament",
    "the transport ministry", "a neighborhood association", "the university's planning office",
    "a group of retired engineers", "the national audit office",
)  # fmt: skip

OFFICIAL_ROLES = (
    "the deputy mayor", "a spokeswoman for the ministry", "a senior planner",
    "the union's treasurer", "a longtime resident", "an economist at the central bank",
)  # fmt: skip

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

TOPICS = (
    "the cost of the project", "the timetable", "the environmental review",
    "the opposition's proposal", "a legal challenge", "the vote next month",
    "the summer season", "the new contracts",
)  # fmt: skip

#: Sentence templates; fields: place, org, role, person, day, number, topic.
SENTENCES = (
    "Officials in {place} said on {day} that {topic} would be settled within {number} weeks.",
    "{person}, {role}, said the decision reflected years of argument over {topic}.",
    "The proposal drew about {number} people to a crowded hearing in {place} on {day}.",
    "Critics, including {org}, argued that {topic} had been rushed.",
    "Supporters said the change was overdue and pointed to similar efforts outside {place}.",
    "{person} said that nobody expected {topic} to be simple.",
    "According to {org}, the first phase would cost roughly {number} million euros.",
    "Residents have long complained about {topic}, and {role} acknowledged as much.",
    "A final decision is not expected before {day}, {person} said.",
    "The debate in {place} has echoed arguments heard in other cities for {number} years.",
    "\u201cWe are not going to pretend this is easy,\u201d {person} said in an interview.",
    "It\u2019s the third time in {number} months that {topic} has been reopened.",
)  # fmt: skip

CAPTIONS = (
    "Residents gathered outside the town hall in {place} before the vote.",
    "A view of the waterfront in {place}, where the plan would take effect.",
    "Workers on a morning shift in {place} last week.",
    "The old market square in {place} on a quiet afternoon.",
)  # fmt: skip

PHOTOGRAPHERS = ("Ilse Moreau", "Tobias Wren", "Nadia Forsberg", "Marco Lindahl", "Sade Okafor")

BIO_ROLES = (
    "covers city politics and infrastructure",
    "is a correspondent based in {place}",
    "writes about transportation and urban planning",
    "is an editor on the International desk",
)  # fmt: skip

EXTERNAL_LINKS = (
    "https://twitter.com/{handle}",
    "https://www.example.org/reports/{slug}",
    "https://data.example.net/datasets/{slug}",
)
