"""Deterministic synthetic records: the seed account and `--generate OBJECT=N`.

The same seed gives the same records, so tests and benchmarks are repeatable. The committed
seed in `sample_data/sandbox/` is written by this module:

    python -m insightly_etl.sandbox.synth sample_data/sandbox
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SEED_TIME = datetime(2026, 11, 1, 9, 0, 0, tzinfo=UTC)  # the seed account's "now"
FMT = "%Y-%m-%d %H:%M:%S"

FIRST = [
    "Ava",
    "Ben",
    "Chloe",
    "Daniel",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Isla",
    "Jonas",
    "Keira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Samir",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Amelie",
    "Bruno",
    "Carmen",
    "Dmitri",
    "Esme",
    "Felix",
    "Ines",
    "Joao",
    "Katja",
    "Lars",
    "Marta",
    "Nils",
    "Orla",
    "Priya",
    "Rafael",
    "Sofia",
    "Tomas",
    "Ulla",
    "Vikram",
    "Wiebke",
]
LAST = [
    "Adams",
    "Becker",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Muller",
    "Nakamura",
    "O'Brien",
    "Petrov",
    "Quispe",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ulrich",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zimmermann",
    "Andersson",
    "Brennan",
    "Castillo",
    "Dunn",
    "Eriksen",
    "Fontaine",
    "Gruber",
    "Haddad",
    "Ivanova",
    "Jovanovic",
]
COMPANY_A = [
    "North",
    "South",
    "Blue",
    "Red",
    "Green",
    "Silver",
    "Iron",
    "Bright",
    "Swift",
    "Clear",
    "Prime",
    "Summit",
    "Harbor",
    "Maple",
]
COMPANY_B = [
    "Logistics",
    "Analytics",
    "Foods",
    "Outfitters",
    "Robotics",
    "Media",
    "Health",
    "Energy",
    "Studios",
    "Labs",
    "Systems",
    "Partners",
]
SUFFIX = ["Ltd", "GmbH", "Inc", "BV", "SA", "AB", "LLC", "Pty"]
CITIES = [
    ("London", "", "United Kingdom", "EC1A 1BB"),
    ("Berlin", "", "Germany", "10115"),
    ("Boston", "MA", "United States", "02108"),
    ("Holtsville", "NY", "United States", "00501"),
    ("Lyon", "", "France", "69001"),
    ("Sydney", "NSW", "Australia", "2000"),
    ("Toronto", "ON", "Canada", "M5H 2N2"),
    ("Amsterdam", "", "Netherlands", "1012 JS"),
    ("Madrid", "", "Spain", "28001"),
    ("Osaka", "", "Japan", "530-0001"),
]
STREETS = [
    "High Street",
    "Main St",
    "Rue de la Paix",
    "Hauptstrasse",
    "Elm Avenue",
    "Harbour Road",
    "Calle Mayor",
]
TAGS = ["vip", "newsletter", "partner", "trade-fair-2026", "churn-risk", "reseller", "press"]
INTERESTS = ["Music", "Sports", "Technology", "Travel", "Food", "Finance"]
TIERS = ["Bronze", "Silver", "Gold", "Platinum"]


def _opt(values: list[str], start: int) -> list[dict[str, Any]]:
    return [
        {"OPTION_ID": start + n, "OPTION_VALUE": v, "OPTION_DEFAULT": False}
        for n, v in enumerate(values)
    ]


def _cf(
    for_: str,
    order: int,
    name: str,
    label: str,
    ftype: str,
    options: list[dict[str, Any]] | None = None,
    default: str | None = None,
    help_text: str | None = None,
    join: str | None = None,
) -> dict[str, Any]:
    return {
        "FIELD_NAME": name,
        "FIELD_ORDER": order,
        "FIELD_FOR": for_,
        "FIELD_LABEL": label,
        "FIELD_TYPE": ftype,
        "FIELD_HELP_TEXT": help_text,
        "DEFAULT_VALUE": default,
        "EDITABLE": ftype != "AUTONUMBER",
        "VISIBLE": True,
        "CUSTOM_FIELD_OPTIONS": options or [],
        "DEPENDENCY": None,
        "JOIN_OBJECT": join,
    }


def custom_field_definitions() -> dict[str, list[dict[str, Any]]]:
    """Definitions covering every FIELD_TYPE seen live (docs/api.md §3), with realistic options."""
    return {
        "Contacts": [
            _cf("CONTACT", 1, "Customer_Tier__c", "Customer Tier", "DROPDOWN", _opt(TIERS, 101)),
            _cf("CONTACT", 2, "Interests__c", "Interests", "MULTISELECT", _opt(INTERESTS, 201)),
            _cf("CONTACT", 3, "Newsletter__c", "Newsletter", "BIT", default="False"),
            _cf("CONTACT", 4, "First_Purchase__c", "First Purchase", "DATE"),
            _cf("CONTACT", 5, "Last_Webinar__c", "Last Webinar", "DATETIME"),
            _cf("CONTACT", 6, "Lifetime_Value__c", "Lifetime Value", "NUMERIC", default="0"),
            _cf("CONTACT", 7, "Discount__c", "Discount", "PERCENT"),
            _cf("CONTACT", 8, "Member_No__c", "Member No", "AUTONUMBER"),
            _cf("CONTACT", 9, "Nickname__c", "Nickname", "TEXT"),
            _cf("CONTACT", 10, "Dietary_Notes__c", "Dietary Notes", "MULTILINETEXT"),
            _cf(
                "CONTACT",
                11,
                "External_Id__c",
                "External Id",
                "TEXT",
                help_text="Id of this contact in the system it was imported from",
            ),
        ],
        "Organisations": [
            _cf(
                "ORGANISATION",
                1,
                "Segment__c",
                "Segment",
                "DROPDOWN",
                _opt(["Enterprise", "Mid-Market", "SMB", "Public Sector"], 301),
            ),
            _cf("ORGANISATION", 2, "Employees__c", "Employees", "NUMERIC"),
            _cf("ORGANISATION", 3, "Partner__c", "Partner", "BIT", default="False"),
            _cf("ORGANISATION", 4, "Contract_Start__c", "Contract Start", "DATE"),
            _cf("ORGANISATION", 5, "Account_No__c", "Account No", "AUTONUMBER"),
        ],
        "Leads": [
            _cf("LEAD", 1, "Lead_Score__c", "Lead Score", "NUMERIC"),
            _cf("LEAD", 2, "Budget_Confirmed__c", "Budget Confirmed", "BIT", default="False"),
            _cf(
                "LEAD",
                3,
                "Product_Interest__c",
                "Product Interest",
                "MULTISELECT",
                _opt(["Hardware", "Software", "Support", "Training"], 401),
            ),
            _cf("LEAD", 4, "Follow_Up__c", "Follow Up", "DATETIME"),
        ],
        "Opportunities": [
            _cf(
                "OPPORTUNITY",
                1,
                "Competitor__c",
                "Competitor",
                "DROPDOWN",
                _opt(["Acme", "Globex", "Initech", "None"], 501),
            ),
            _cf("OPPORTUNITY", 2, "Win_Chance__c", "Win Chance", "PERCENT"),
            _cf("OPPORTUNITY", 3, "Deal_Notes__c", "Deal Notes", "MULTILINETEXT"),
            _cf("OPPORTUNITY", 4, "Renewal_Date__c", "Renewal Date", "DATE"),
        ],
    }


def _custom_object(name: str, singular: str, plural: str, description: str) -> dict[str, Any]:
    return {
        "OBJECT_NAME": name,
        "SINGULAR_LABEL": singular,
        "PLURAL_LABEL": plural,
        "DESCRIPTION": description,
        "RECORD_NAME_LABEL": f"{singular} Name",
        "RECORD_NAME_TYPE": "TEXT",
        "RECORD_NAME_DISPLAY_FORMAT": None,
        "ENABLE_NAVBAR": True,
        "ENABLE_WORKFLOWS": False,
        "CREATED_USER_ID": 1,
        "DATE_CREATED_UTC": "2025-02-03 10:15:00",
        "DATE_UPDATED_UTC": "2025-02-03 10:15:00",
    }


# The seed account's custom objects: a site run by an organisation, and the assets at a site
# (a lookup to a standard object, and one to another custom object). The sandbox knows them
# only from the seed, as it would know any account's.
CUSTOM_OBJECTS = [
    _custom_object("Site__c", "Site", "Sites", "Warehouses, shops and offices of our customers"),
    _custom_object("Asset__c", "Asset", "Assets", "Equipment installed at a site"),
]


def custom_object_fields() -> dict[str, list[dict[str, Any]]]:
    """Custom fields of the custom objects: every FIELD_TYPE, and lookups (docs/api.md §3: a
    lookup is FIELD_TYPE "LOOKUP" with JOIN_OBJECT set — ASSUMPTION (§11), the name is not
    seen live)."""
    services = ["Cleaning", "Security", "Maintenance", "Catering"]
    return {
        "Site__c": [
            _cf("SITE__C", 1, "Organisation__c", "Organisation", "LOOKUP", join="Organisation"),
            _cf(
                "SITE__C",
                2,
                "Site_Type__c",
                "Site Type",
                "DROPDOWN",
                _opt(["Warehouse", "Store", "Office", "Plant"], 601),
            ),
            _cf("SITE__C", 3, "Street__c", "Street", "TEXT"),
            _cf("SITE__C", 4, "Access_Notes__c", "Access Notes", "MULTILINETEXT"),
            _cf("SITE__C", 5, "Opened__c", "Opened", "DATE"),
            _cf("SITE__C", 6, "Last_Inspection__c", "Last Inspection", "DATETIME"),
            _cf("SITE__C", 7, "Floor_Area__c", "Floor Area (m²)", "NUMERIC"),
            _cf("SITE__C", 8, "Occupancy__c", "Occupancy", "PERCENT"),
            _cf("SITE__C", 9, "Active__c", "Active", "BIT", default="False"),
            _cf("SITE__C", 10, "Services__c", "Services", "MULTISELECT", _opt(services, 701)),
            _cf("SITE__C", 11, "Site_No__c", "Site No", "AUTONUMBER"),
        ],
        "Asset__c": [
            _cf("ASSET__C", 1, "Site__c", "Site", "LOOKUP", join="Site__c"),
            _cf("ASSET__C", 2, "Serial_No__c", "Serial No", "TEXT"),
            _cf(
                "ASSET__C",
                3,
                "Status__c",
                "Status",
                "DROPDOWN",
                _opt(["In service", "Under repair", "Retired"], 801),
            ),
            _cf("ASSET__C", 4, "Purchased__c", "Purchased", "DATE"),
            _cf("ASSET__C", 5, "Purchase_Price__c", "Purchase Price", "NUMERIC"),
        ],
    }


INSTANCE = {
    "INSTANCE_NAME": "Northwind Outfitters (sandbox)",
    "INSTANCE_SUBDOMAIN": "northwind-sandbox",
    "PLAN_NAME": "Plus",
    "NEW_USER_EXPERIENCE_ENABLED": True,
}


def _ts(rng: random.Random, start: datetime, end: datetime) -> str:
    span = int((end - start).total_seconds())
    return (start + timedelta(seconds=rng.randrange(max(span, 1)))).strftime(FMT)


def _dates(rng: random.Random) -> tuple[str, str]:
    created = _ts(rng, datetime(2023, 1, 1, tzinfo=UTC), SEED_TIME - timedelta(days=30))
    c = datetime.strptime(created, FMT).replace(tzinfo=UTC)
    updated = _ts(rng, c, SEED_TIME) if rng.random() < 0.6 else created
    return created, updated


def _reference_data() -> dict[str, list[dict[str, Any]]]:
    users = []
    for n, (first, last, admin) in enumerate(
        [
            ("Morgan", "Reyes", True),
            ("Sam", "Okafor", False),
            ("Lena", "Vogel", False),
            ("Kenji", "Sato", False),
            ("Priya", "Nair", True),
        ],
        start=1,
    ):
        users.append(
            {
                "USER_ID": n,
                "CONTACT_ID": None,
                "FIRST_NAME": first,
                "LAST_NAME": last,
                "TIMEZONE_ID": "GMT Standard Time",
                "EMAIL_ADDRESS": f"{first.lower()}@northwind.example",
                "EMAIL_DROPBOX_IDENTIFIER": f"dropbox{n}",
                "EMAIL_DROPBOX_ADDRESS": f"dropbox{n}@mailbox.insight.ly",
                "ADMINISTRATOR": admin,
                "ACCOUNT_OWNER": n == 1,
                "ACTIVE": True,
                "DATE_CREATED_UTC": f"2023-01-0{n} 09:00:00",
                "DATE_UPDATED_UTC": f"2023-01-0{n} 09:00:00",
                "USER_CURRENCY": "EUR",
                "CONTACT_DISPLAY": "LastFirst",
                "CONTACT_ORDER": "LastName",
                "TASK_WEEK_START": 1,
                "INSTANCE_ID": 424242,
                "PROFILE_ID": 1,
                "ROLE_ID": None,
            }
        )
    pipelines = [
        {
            "PIPELINE_ID": 1,
            "PIPELINE_NAME": "New Business",
            "FOR_OPPORTUNITIES": True,
            "FOR_PROJECTS": False,
            "OWNER_USER_ID": 1,
        },
        {
            "PIPELINE_ID": 2,
            "PIPELINE_NAME": "Renewals",
            "FOR_OPPORTUNITIES": True,
            "FOR_PROJECTS": False,
            "OWNER_USER_ID": 1,
        },
        {
            "PIPELINE_ID": 3,
            "PIPELINE_NAME": "Onboarding",
            "FOR_OPPORTUNITIES": False,
            "FOR_PROJECTS": True,
            "OWNER_USER_ID": 5,
        },
    ]
    stage_names = {
        1: ["Qualification", "Needs Analysis", "Proposal", "Negotiation"],
        2: ["Contacted", "Proposal", "Signed"],  # "Proposal" is in both: a name alone is ambiguous
        3: ["Kick-off", "Configuration", "Training", "Live"],
    }
    stages = []
    for pid, names in stage_names.items():
        for order, name in enumerate(names, start=1):
            stages.append(
                {
                    "STAGE_ID": pid * 10 + order,
                    "PIPELINE_ID": pid,
                    "STAGE_NAME": name,
                    "STAGE_ORDER": order,
                    "ACTIVITYSET_ID": None,
                    "OWNER_USER_ID": 1,
                }
            )
    sources = [
        {"LEAD_SOURCE_ID": n, "LEAD_SOURCE": s, "DEFAULT_VALUE": n == 1, "FIELD_ORDER": n}
        for n, s in enumerate(["Web", "Referral", "Trade Show", "Cold Call", "Partner"], start=1)
    ]
    statuses = [
        {
            "LEAD_STATUS_ID": n,
            "LEAD_STATUS": s,
            "DEFAULT_STATUS": n == 1,
            "STATUS_TYPE": t,
            "FIELD_ORDER": n,
        }
        for n, (s, t) in enumerate(
            [("New", 1), ("Contacted", 1), ("Qualified", 1), ("Disqualified", 2), ("Converted", 3)],
            start=1,
        )
    ]

    def cats(names: list[str], colours: list[str]) -> list[dict[str, Any]]:
        return [
            {"CATEGORY_ID": n, "CATEGORY_NAME": name, "ACTIVE": True, "BACKGROUND_COLOR": col}
            for n, (name, col) in enumerate(zip(names, colours, strict=True), start=1)
        ]

    return {
        "Users": users,
        "Pipelines": pipelines,
        "PipelineStages": stages,
        "LeadSources": sources,
        "LeadStatuses": statuses,
        "OpportunityCategories": cats(
            ["Hardware", "Software", "Services"], ["1f77b4", "ff7f0e", "2ca02c"]
        ),
        "ProjectCategories": cats(["Implementation", "Support"], ["9467bd", "8c564b"]),
        "TaskCategories": cats(
            ["Call", "Email", "Meeting", "Follow-up"], ["e377c2", "7f7f7f", "bcbd22", "17becf"]
        ),
        "FileCategories": cats(["Contracts", "Invoices", "Photos"], ["d62728", "1f77b4", "2ca02c"]),
        "OpportunityStateReasons": [
            {"STATE_REASON_ID": n, "STATE_REASON": reason, "FOR_OPPORTUNITY_STATE": state}
            for n, (reason, state) in enumerate(
                [
                    ("Price too high", "Lost"),
                    ("Chose a competitor", "Lost"),
                    ("No decision", "Lost"),
                    ("Budget approved", "Won"),
                    ("Best fit", "Won"),
                    ("Project cancelled", "Abandoned"),
                    ("On hold by the customer", "Suspended"),
                ],
                start=1,
            )
        ],
        "Relationships": [
            {
                "RELATIONSHIP_ID": n,
                "FORWARD_TITLE": fwd_title,
                "FORWARD": fwd,
                "REVERSE_TITLE": rev_title,
                "REVERSE": rev,
                "FOR_CONTACTS": contacts,
                "FOR_ORGANISATIONS": orgs,
            }
            for n, (fwd_title, fwd, rev_title, rev, contacts, orgs) in enumerate(
                [
                    ("Manager", "is the manager of", "Report", "reports to", True, False),
                    ("Partner", "is a partner of", "Partner", "is a partner of", True, True),
                    (
                        "Parent",
                        "is the parent company of",
                        "Subsidiary",
                        "is a subsidiary of",
                        False,
                        True,
                    ),
                ],
                start=1,
            )
        ],
        "Teams": [
            {
                "TEAM_ID": 1,
                "TEAM_NAME": "Sales",
                "DATE_CREATED_UTC": "2023-01-05 09:00:00",
                "DATE_UPDATED_UTC": "2025-06-01 12:00:00",
                "TEAMMEMBERS": [
                    {"PERMISSION_ID": 1, "TEAM_ID": 1, "MEMBER_USER_ID": 1},
                    {"PERMISSION_ID": 2, "TEAM_ID": 1, "MEMBER_USER_ID": 2},
                ],
            },
            {
                "TEAM_ID": 2,
                "TEAM_NAME": "Support",
                "DATE_CREATED_UTC": "2023-01-05 09:00:00",
                "DATE_UPDATED_UTC": "2024-02-10 08:30:00",
                "TEAMMEMBERS": [{"PERMISSION_ID": 3, "TEAM_ID": 2, "MEMBER_USER_ID": 3}],
            },
        ],
        "TeamMembers": [
            {"PERMISSION_ID": 1, "TEAM_ID": 1, "MEMBER_USER_ID": 1},
            {"PERMISSION_ID": 2, "TEAM_ID": 1, "MEMBER_USER_ID": 2},
            {"PERMISSION_ID": 3, "TEAM_ID": 2, "MEMBER_USER_ID": 3},
        ],
        "Countries": [{"COUNTRY_NAME": c[2]} for c in sorted(set(CITIES), key=lambda c: c[2])],
        "Currencies": [
            {"CURRENCY_CODE": code, "CURRENCY_SYMBOL": sym}
            for code, sym in [("EUR", "€"), ("GBP", "£"), ("USD", "$"), ("JPY", "¥"), ("AUD", "A$")]
        ],
        **_add_ons(),
    }


def _add_ons() -> dict[str, list[dict[str, Any]]]:
    """Activity sets, document templates, and a little of the Service (knowledge base,
    community) and Marketing (visits) add-ons, with the fields of the swagger's answers."""
    day = "2025-03-04 10:00:00"

    def activity(n: int, set_id: int, name: str, kind: str, due: int) -> dict[str, Any]:
        return {
            "ACTIVITY_ID": n,
            "ACTIVITYSET_ID": set_id,
            "ACTIVITY_NAME": name,
            "ACTIVITY_DETAILS": None,
            "ACTIVITY_TYPE": kind,
            "CATEGORY_ID": 1 if kind == "Task" else None,
            "REMINDER": False,
            "OWNER_USER_ID": 1,
            "RESPONSIBLE_USER_ID": 2,
            "DUE_DAYS_AFTER_START": due,
            "ALL_DAY": False,
        }

    return {
        "ActivitySets": [
            {
                "ACTIVITYSET_ID": 1,
                "NAME": "New customer onboarding",
                "FOR_CONTACTS": False,
                "FOR_ORGANISATIONS": True,
                "FOR_OPPORTUNITIES": False,
                "FOR_PROJECTS": True,
                "FOR_LEADS": False,
                "OWNER_USER_ID": 1,
                "ACTIVITIES": [
                    activity(1, 1, "Welcome call", "Task", 1),
                    activity(2, 1, "Kick-off meeting", "Event", 7),
                ],
            },
            {
                "ACTIVITYSET_ID": 2,
                "NAME": "Proposal follow-up",
                "FOR_CONTACTS": False,
                "FOR_ORGANISATIONS": False,
                "FOR_OPPORTUNITIES": True,
                "FOR_PROJECTS": False,
                "FOR_LEADS": False,
                "OWNER_USER_ID": 2,
                "ACTIVITIES": [activity(3, 2, "Chase the signature", "Task", 5)],
            },
        ],
        "DocumentTemplates": [
            {
                "TEMPLATE_ID": n,
                "TEMPLATE_NAME": name,
                "TEMPLATE_FILE_TYPE": kind,
                "RELATED_OBJECT_NAME": obj,
                "DATE_CREATED_UTC": day,
                "ACTIVE": active,
            }
            for n, (name, kind, obj, active) in enumerate(
                [
                    ("Quote (EUR)", "docx", "Quotation", True),
                    ("Welcome letter", "docx", "Contact", True),
                    ("Old quote", "pdf", "Quotation", False),
                ],
                start=1,
            )
        ],
        "KnowledgeArticleCategory": [
            {
                "CATEGORY_ID": 1,
                "CATEGORY_NAME": "Getting started",
                "DESCRIPTION": "First steps",
                "CREATED_USER_ID": 1,
                "DATE_CREATED_UTC": day,
                "DATE_UPDATED_UTC": day,
            }
        ],
        "KnowledgeArticleFolder": [
            {
                "FOLDER_ID": 1,
                "FOLDER_NAME": "Installation",
                "CATEGORY_ID": "1",  # a string in the swagger's answer schema
                "VISIBILITY": "Public",
                "ORDER_ARTICLES": "Alphabetical",
                "CREATED_USER_ID": 1,
                "DATE_CREATED_UTC": day,
                "DATE_UPDATED_UTC": day,
            }
        ],
        "KnowledgeArticle": [
            {
                "ARTICLE_ID": n,
                "CATEGORY_ID": 1,
                "FOLDER_ID": 1,
                "ARTICLE_NO": 100 + n,
                "ArticleVersion": "1",
                "Status": "Published",
                "Language": "en",
                "Title": title,
                "Body": body,
                "URL_SLUG": slug,
                "DOWNVOTE_COUNT": 0,
                "UPVOTE_COUNT": 3 * n,
                "PROMOTED": n == 1,
                "FIRST_PUBLISHED_DATE_UTC": day,
                "LAST_PUBLISHED_DATE_UTC": day,
                "ARCHIVED_DATE_UTC": None,
                "DATE_CREATED_UTC": day,
                "DATE_UPDATED_UTC": day,
                "OWNER_USER_ID": 1,
                "CREATED_USER_ID": 1,
                "ExternalLinkCount": "0",
                "CUSTOMFIELDS": [],
                "TAGS": [{"TAG_NAME": "howto"}],
            }
            for n, (title, body, slug) in enumerate(
                [
                    ("Installing the scanner app", "<p>Download, then pair.</p>", "install-app"),
                    ("Resetting a password", "<p>Use the link on the sign-in page.</p>", "reset"),
                ],
                start=1,
            )
        ],
        "ForumCategories": [
            {
                "FORUM_CATEGORY_ID": 1,
                "CATEGORY_NAME": "Product",
                "DATE_CREATED_UTC": day,
                "DATE_UPDATED_UTC": day,
            }
        ],
        "CommunityForums": [
            {
                "FORUM_ID": 1,
                "FORUM_CATEGORY_ID": 1,
                "FORUM_NAME": "Ideas",
                "DESCRIPTION": "Tell us what to build",
                "FORUM_TYPE": "Discussion",
                "VISIBILITY": "Public",
                "CREATED_USER_ID": 1,
                "DATE_CREATED_UTC": day,
                "DATE_UPDATED_UTC": day,
                "FORUM_ORDER": "1",
            }
        ],
        "CommunityPosts": [
            {
                "POST_ID": 1,
                "FORUM_ID": 1,
                "POST_NAME": "Dark mode, please",
                "MESSAGE": "Night shifts would thank you.",
                "PINNED": False,
                "FEATURED": True,
                "CLOSED": False,
                "PENDING": False,
                "STATUS": "Open",
                "COMMENT_COUNT": "1",
                "VIEW_COUNT": "42",
                "FOLLOWER_COUNT": "3",
                "UPVOTE_COUNT": "7",
                "DOWNVOTE_COUNT": "0",
                "TICKET_ID": None,
                "CREATED_CONTACT_ID": 2001,
                "EDITED_CONTACT_ID": None,
                "DATE_EDITED_UTC": None,
                "DATE_CREATED_UTC": day,
                "DATE_UPDATED_UTC": day,
                "SPAM": False,
            }
        ],
        "CommunityComments": [
            {
                "COMMENT_ID": 1,
                "BODY": "+1, and a high-contrast theme.",
                "ANSWER": False,
                "SPAM": False,
                "PENDING": False,
                "OFFICIAL": False,
                "UPVOTE_COUNT": "2",
                "DOWNVOTE_COUNT": "0",
                "POST_ID": 1,
                "CREATED_CONTACT_ID": 2002,
                "EDITED_CONTACT_ID": None,
                "DATE_EDITED_UTC": None,
                "DATE_CREATED_UTC": day,
                "DATE_UPDATED_UTC": day,
                "FORUM_ID": 1,
            }
        ],
        "MarketingVisits": [
            {
                "VISIT_ID": n,
                "PROSPECT_ID": prospect,
                "MKT_MEDIUM": medium,
                "MKT_SOURCE": source,
                "MKT_TERM": None,
                "MKT_CONTENT": None,
                "MKT_NETWORK": None,
                "MKT_CLICKID": None,
                "PAGE_REFERRER": referrer,
                "REFR_SOURCE": source,
                "REFR_MEDIUM": medium,
                "PAGE_VIEW_COUNT": views,
                "FIRST_PAGE_VIEW_DATE_UTC": "2026-10-01 08:00:00",
                "LAST_PAGE_VIEW_DATE_UTC": "2026-10-01 08:12:00",
            }
            for n, (prospect, medium, source, referrer, views) in enumerate(
                [
                    (ID_BASE["Prospect"] + 1, "cpc", "google", "https://www.google.com/", 4),
                    (ID_BASE["Prospect"] + 2, "email", "newsletter", None, 2),
                    (ID_BASE["Prospect"] + 1, "organic", "bing", "https://www.bing.com/", 1),
                ],
                start=1,
            )
        ],
    }


def _collection_named(join: str, collections: Iterable[str]) -> str | None:
    """The collection a lookup's JOIN_OBJECT names: a singular (`Organisation`), or a custom
    object's own name (`Site__c`); any case."""
    key = join.strip().lower()
    for name in collections:
        low = name.lower()
        single = low[:-3] + "y" if low.endswith("ies") else low.removesuffix("s")
        if key in (low, single):
            return name
    return None


def _dedupe_countries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["COUNTRY_NAME"] not in seen:
            seen.add(row["COUNTRY_NAME"])
            out.append(row)
    return out


class Generator:
    """Makes records of one collection from an id upward; `context` ids keep references valid.
    Custom objects' records are made from their definitions (`custom`: OBJECT_NAME -> the
    object and its custom fields), so any seed's custom objects can be generated."""

    def __init__(
        self,
        seed: str,
        context: dict[str, list[int]],
        custom: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] | None = None,
    ) -> None:
        self.seed = seed
        self.context = context
        self.custom = custom or {}

    def records(self, collection: str, start_id: int, count: int) -> Iterator[dict[str, Any]]:
        for rid in range(start_id, start_id + count):
            rng = random.Random(f"{self.seed}:{collection}:{rid}")
            if collection in self.custom:
                yield self._custom_record(rng, rid, *self.custom[collection])
            else:
                yield getattr(self, "_" + collection.lower())(rng, rid)

    def _custom_record(
        self, rng: random.Random, rid: int, obj: dict[str, Any], fields: list[dict[str, Any]]
    ) -> dict[str, Any]:
        created, updated = _dates(rng)
        city = rng.choice(CITIES)[0]
        values = []
        for d in fields:
            value = self._custom_value(rng, rid, d, created, updated)
            if value is not None:
                values.append({"FIELD_NAME": d["FIELD_NAME"], "FIELD_VALUE": value})
        return {
            "RECORD_ID": rid,
            "RECORD_NAME": f"{city} {obj.get('SINGULAR_LABEL') or 'Record'} {rid}",
            "OWNER_USER_ID": self._user(rng),
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "CREATED_USER_ID": 1,
            "VISIBLE_TO": "EVERYONE",
            "VISIBLE_TEAM_ID": None,
            "CUSTOMFIELDS": values,
        }

    def _custom_value(
        self, rng: random.Random, rid: int, d: dict[str, Any], created: str, updated: str
    ) -> Any:
        ftype = d.get("FIELD_TYPE")
        options = [o["OPTION_VALUE"] for o in d.get("CUSTOM_FIELD_OPTIONS") or []]
        if ftype == "AUTONUMBER":
            return str(rid)
        if rng.random() < 0.15:
            return None  # some fields are left empty, as people leave them
        if ftype == "LOOKUP":
            target = _collection_named(str(d.get("JOIN_OBJECT")), self.context)
            ids = self.context.get(target, []) if target else []
            return rng.choice(ids) if ids else None
        if ftype == "DROPDOWN":
            return rng.choice(options)
        if ftype == "MULTISELECT":
            return ";".join(rng.sample(options, rng.randint(1, min(2, len(options)))))
        if ftype == "BIT":
            return rng.random() < 0.7
        if ftype == "DATE":
            return created[:10] + " 00:00:00"
        if ftype == "DATETIME":
            return updated
        if ftype == "NUMERIC":
            return rng.choice([120, 450, 980.5, 2300, 12000])
        if ftype == "PERCENT":
            return rng.randint(0, 100)
        if ftype == "MULTILINETEXT":
            return rng.choice(["Key at reception", "Gate code 4411\nAsk for the site manager"])
        return f"{str(d.get('FIELD_LABEL') or 'Value').split()[0].upper()}-{rid:06d}"

    def _user(self, rng: random.Random) -> int:
        return rng.choice(self.context["Users"])

    def _contacts(self, rng: random.Random, rid: int) -> dict[str, Any]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, state, country, post = rng.choice(CITIES)
        created, updated = _dates(rng)
        email = f"{first}.{last}.{rid}@example.com".lower().replace("'", "")
        cf: list[dict[str, Any]] = [
            {"FIELD_NAME": "Customer_Tier__c", "FIELD_VALUE": rng.choice(TIERS)},
            {"FIELD_NAME": "Member_No__c", "FIELD_VALUE": str(rid)},
            {"FIELD_NAME": "External_Id__c", "FIELD_VALUE": f"EXT-{rid:07d}"},
        ]
        if rng.random() < 0.6:
            cf.append(
                {
                    "FIELD_NAME": "Interests__c",
                    "FIELD_VALUE": ";".join(sorted(rng.sample(INTERESTS, rng.randint(1, 3)))),
                }
            )
        if rng.random() < 0.7:
            cf.append({"FIELD_NAME": "Newsletter__c", "FIELD_VALUE": rng.random() < 0.5})
        if rng.random() < 0.5:
            cf.append(
                {"FIELD_NAME": "First_Purchase__c", "FIELD_VALUE": created[:10] + " 00:00:00"}
            )
        if rng.random() < 0.3:
            cf.append({"FIELD_NAME": "Last_Webinar__c", "FIELD_VALUE": updated})
        if rng.random() < 0.6:
            cf.append(
                {"FIELD_NAME": "Lifetime_Value__c", "FIELD_VALUE": round(rng.uniform(0, 25000), 2)}
            )
        if rng.random() < 0.3:
            cf.append({"FIELD_NAME": "Discount__c", "FIELD_VALUE": rng.choice([5, 10, 12.5, 15])})
        if rng.random() < 0.2:
            cf.append({"FIELD_NAME": "Nickname__c", "FIELD_VALUE": first[:3]})
        if rng.random() < 0.1:
            cf.append(
                {"FIELD_NAME": "Dietary_Notes__c", "FIELD_VALUE": "Vegetarian.\nNo nuts, please."}
            )
        orgs = self.context.get("Organisations") or []
        record: dict[str, Any] = {
            "CONTACT_ID": rid,
            "SALUTATION": rng.choice([None, "Mr", "Ms", "Dr"]),
            "FIRST_NAME": first,
            "LAST_NAME": last,
            "BACKGROUND": rng.choice([None, "Met at the Berlin trade fair."]),
            "OWNER_USER_ID": self._user(rng),
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "EMAIL_ADDRESS": email,
            "PHONE": f"+44 20 7946 {rng.randrange(10000):04d}",
            "PHONE_MOBILE": rng.choice([None, f"+49 151 {rng.randrange(10**7):07d}"]),
            "ADDRESS_MAIL_STREET": f"{rng.randint(1, 200)} {rng.choice(STREETS)}",
            "ADDRESS_MAIL_CITY": city,
            "ADDRESS_MAIL_STATE": state or None,
            "ADDRESS_MAIL_POSTCODE": post,
            "ADDRESS_MAIL_COUNTRY": country,
            "DATE_OF_BIRTH": rng.choice(
                [
                    None,
                    f"{rng.randint(1955, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 00:00:00",
                ]
            ),
            "CREATED_USER_ID": 1,
            "ORGANISATION_ID": rng.choice(orgs) if orgs and rng.random() < 0.8 else None,
            "TITLE": rng.choice(
                [None, "CEO", "Head of Sales", "Buyer", "Engineer", "Office Manager"]
            ),
            "EMAIL_OPTED_OUT": rng.random() < 0.1,
            "CUSTOMFIELDS": cf,
            "TAGS": [{"TAG_NAME": t} for t in rng.sample(TAGS, rng.randint(0, 2))],
        }
        if rng.random() < 0.15:
            record["DATES"] = [
                {
                    "DATE_ID": 1,
                    "OCCASION_NAME": "Anniversary",
                    "OCCASION_DATE": created[:10] + " 00:00:00",
                    "REPEAT_YEARLY": True,
                    "CREATE_TASK_YEARLY": False,
                }
            ]
        if record["ORGANISATION_ID"] is not None:
            record["LINKS"] = [
                {
                    "LINK_ID": rid * 10,
                    "OBJECT_NAME": "Contact",
                    "OBJECT_ID": rid,
                    "LINK_OBJECT_NAME": "Organisation",
                    "LINK_OBJECT_ID": record["ORGANISATION_ID"],
                    "ROLE": rng.choice([None, "Buyer", "Decision maker"]),
                    "DETAILS": None,
                    "RELATIONSHIP_ID": None,
                    "IS_FORWARD": True,
                }
            ]
        return record

    def _organisations(self, rng: random.Random, rid: int) -> dict[str, Any]:
        # unique by construction for the first 1,344 ids; generated ones carry their id
        n = rid % (len(COMPANY_A) * len(COMPANY_B) * len(SUFFIX))
        name = f"{COMPANY_A[n % len(COMPANY_A)]} {COMPANY_B[(n // len(COMPANY_A)) % len(COMPANY_B)]} {SUFFIX[n % len(SUFFIX)]}"
        if rid >= 1_000_000:
            name += f" #{rid}"
        city, state, country, post = rng.choice(CITIES)
        created, updated = _dates(rng)
        domain = name.split()[0].lower() + name.split()[1].lower() + f"{rid}.example"
        return {
            "ORGANISATION_ID": rid,
            "ORGANISATION_NAME": name,
            "BACKGROUND": None,
            "OWNER_USER_ID": self._user(rng),
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "CREATED_USER_ID": 1,
            "PHONE": f"+1 617 555 {rng.randrange(10000):04d}",
            "WEBSITE": f"https://www.{domain}",
            "ADDRESS_BILLING_STREET": f"{rng.randint(1, 200)} {rng.choice(STREETS)}",
            "ADDRESS_BILLING_CITY": city,
            "ADDRESS_BILLING_STATE": state or None,
            "ADDRESS_BILLING_COUNTRY": country,
            "ADDRESS_BILLING_POSTCODE": post,
            "CUSTOMFIELDS": [
                {
                    "FIELD_NAME": "Segment__c",
                    "FIELD_VALUE": rng.choice(["Enterprise", "Mid-Market", "SMB", "Public Sector"]),
                },
                {
                    "FIELD_NAME": "Employees__c",
                    "FIELD_VALUE": rng.choice([12, 45, 230, 1200, 15000]),
                },
                {"FIELD_NAME": "Partner__c", "FIELD_VALUE": rng.random() < 0.2},
                {"FIELD_NAME": "Account_No__c", "FIELD_VALUE": str(rid)},
            ]
            + (
                [{"FIELD_NAME": "Contract_Start__c", "FIELD_VALUE": created[:10] + " 00:00:00"}]
                if rng.random() < 0.5
                else []
            ),
            "TAGS": [{"TAG_NAME": t} for t in rng.sample(TAGS, rng.randint(0, 2))],
            "EMAILDOMAINS": [{"EMAIL_DOMAIN_ID": rid, "EMAIL_DOMAIN": domain}],
        }

    def _leads(self, rng: random.Random, rid: int) -> dict[str, Any]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, state, country, post = rng.choice(CITIES)
        created, updated = _dates(rng)
        cf: list[dict[str, Any]] = [
            {"FIELD_NAME": "Lead_Score__c", "FIELD_VALUE": rng.randint(0, 100)}
        ]
        if rng.random() < 0.5:
            cf.append(
                {
                    "FIELD_NAME": "Product_Interest__c",
                    "FIELD_VALUE": ";".join(
                        sorted(rng.sample(["Hardware", "Software", "Support", "Training"], 2))
                    ),
                }
            )
        if rng.random() < 0.5:
            cf.append({"FIELD_NAME": "Budget_Confirmed__c", "FIELD_VALUE": rng.random() < 0.5})
        if rng.random() < 0.3:
            cf.append({"FIELD_NAME": "Follow_Up__c", "FIELD_VALUE": updated})
        return {
            "LEAD_ID": rid,
            "FIRST_NAME": first,
            "LAST_NAME": last,
            "LEAD_SOURCE_ID": rng.randint(1, 5),
            "LEAD_STATUS_ID": rng.randint(1, 4),
            "TITLE": rng.choice([None, "Buyer", "CTO"]),
            "CONVERTED": False,
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "EMAIL": f"{first}.{last}.lead{rid}@example.org".lower().replace("'", ""),
            "EMPLOYEE_COUNT": rng.choice([None, 10, 50, 250]),
            "INDUSTRY": rng.choice([None, "Retail", "Manufacturing", "Software"]),
            "LEAD_RATING": rng.randint(1, 5),
            "OWNER_USER_ID": self._user(rng),
            "RESPONSIBLE_USER_ID": self._user(rng),
            "ADDRESS_CITY": city,
            "ADDRESS_STATE": state or None,
            "ADDRESS_POSTCODE": post,
            "ADDRESS_COUNTRY": country,
            "ORGANISATION_NAME": f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)}",
            "CREATED_USER_ID": 1,
            "EMAIL_OPTED_OUT": False,
            "CUSTOMFIELDS": cf,
            "TAGS": [{"TAG_NAME": t} for t in rng.sample(TAGS, rng.randint(0, 1))],
        }

    def _opportunities(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        pipeline = rng.choice([1, 2])
        stage = pipeline * 10 + rng.randint(1, 3)
        orgs: list[int | None] = [*self.context.get("Organisations", [])] or [None]
        amount = round(rng.uniform(1000, 90000), -2)
        return {
            "OPPORTUNITY_ID": rid,
            "OPPORTUNITY_NAME": f"{rng.choice(['Fleet', 'Licence', 'Support', 'Rollout'])} deal {rid}",
            "OPPORTUNITY_DETAILS": None,
            "OPPORTUNITY_STATE": rng.choice(["OPEN", "OPEN", "WON", "LOST"]),
            "RESPONSIBLE_USER_ID": self._user(rng),
            "CATEGORY_ID": rng.randint(1, 3),
            "BID_CURRENCY": "EUR",
            "BID_AMOUNT": amount,
            "BID_TYPE": "Fixed Bid",
            "BID_DURATION": None,
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "OPPORTUNITY_VALUE": amount,
            "PROBABILITY": rng.choice([10, 25, 50, 75, 90]),
            "FORECAST_CLOSE_DATE": f"2027-0{rng.randint(1, 9)}-{rng.randint(1, 28):02d} 00:00:00",
            "OWNER_USER_ID": self._user(rng),
            "PIPELINE_ID": pipeline,
            "STAGE_ID": stage,
            "CREATED_USER_ID": 1,
            "ORGANISATION_ID": rng.choice(orgs),
            "CUSTOMFIELDS": [
                {
                    "FIELD_NAME": "Competitor__c",
                    "FIELD_VALUE": rng.choice(["Acme", "Globex", "Initech", "None"]),
                },
                {"FIELD_NAME": "Win_Chance__c", "FIELD_VALUE": rng.choice([20, 40, 60, 80])},
            ]
            + (
                [{"FIELD_NAME": "Renewal_Date__c", "FIELD_VALUE": "2027-06-30 00:00:00"}]
                if pipeline == 2
                else []
            ),
            "TAGS": [{"TAG_NAME": t} for t in rng.sample(TAGS, rng.randint(0, 1))],
        }

    def _projects(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        return {
            "PROJECT_ID": rid,
            "PROJECT_NAME": f"Onboarding {rng.choice(COMPANY_A)} {rid}",
            "STATUS": rng.choice(["Not Started", "In Progress", "Completed"]),
            "PROJECT_DETAILS": None,
            "STARTED_DATE": created[:10] + " 00:00:00",
            "CATEGORY_ID": rng.randint(1, 2),
            "PIPELINE_ID": 3,
            "STAGE_ID": 30 + rng.randint(1, 4),
            "OWNER_USER_ID": self._user(rng),
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "CREATED_USER_ID": 1,
            "RESPONSIBLE_USER_ID": self._user(rng),
        }

    def _tasks(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        done = rng.random() < 0.4
        return {
            "TASK_ID": rid,
            "TITLE": rng.choice(["Call back", "Send quote", "Prepare demo", "Check contract"])
            + f" #{rid}",
            "CATEGORY_ID": rng.randint(1, 4),
            "DUE_DATE": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 00:00:00",
            "COMPLETED": done,
            "COMPLETED_DATE_UTC": updated if done else None,
            "STATUS": "Completed"
            if done
            else rng.choice(["Not Started", "In Progress", "Waiting"]),
            "PRIORITY": rng.randint(1, 3),
            "PERCENT_COMPLETE": 100 if done else rng.choice([0, 25, 50]),
            "RESPONSIBLE_USER_ID": self._user(rng),
            "OWNER_USER_ID": self._user(rng),
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "OWNER_VISIBLE": True,
            "CREATED_USER_ID": 1,
        }

    def _events(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        start = datetime.strptime(created, FMT) + timedelta(days=rng.randint(1, 20))
        return {
            "EVENT_ID": rid,
            "TITLE": rng.choice(["Demo", "Quarterly review", "Site visit"]),
            "LOCATION": rng.choice(CITIES)[0],
            "START_DATE_UTC": start.strftime(FMT),
            "END_DATE_UTC": (start + timedelta(hours=1)).strftime(FMT),
            "ALL_DAY": False,
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "OWNER_USER_ID": self._user(rng),
        }

    def _notes(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        contacts = self.context.get("Contacts") or []
        links = []
        if contacts:
            links = [
                {
                    "LINK_ID": 1,
                    "OBJECT_NAME": "Note",
                    "OBJECT_ID": rid,
                    "LINK_OBJECT_NAME": "Contact",
                    "LINK_OBJECT_ID": rng.choice(contacts),
                    "ROLE": None,
                    "DETAILS": None,
                    "RELATIONSHIP_ID": None,
                    "IS_FORWARD": True,
                }
            ]
        return {
            "NOTE_ID": rid,
            "TITLE": rng.choice(["Call summary", "Pricing discussed", "Follow-up needed"]),
            "BODY": "<p>Discussed next steps.</p>",
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "OWNER_USER_ID": self._user(rng),
            "LINKS": links,
        }

    def _product(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        return {
            "PRODUCT_ID": rid,
            "PRODUCT_NAME": f"{rng.choice(['Trail', 'Summit', 'Harbor'])} {rng.choice(['Pack', 'Tent', 'Jacket'])} {rid}",
            "PRODUCT_CODE": f"P-{rid:05d}",
            "PRODUCT_SKU": f"SKU{rid:06d}",
            "PRODUCT_FAMILY": "Outdoor",
            "CURRENCY_CODE": "EUR",
            "DEFAULT_PRICE": round(rng.uniform(20, 900), 2),
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "CREATED_USER_ID": 1,
            "OWNER_USER_ID": 1,
            "ACTIVE": True,
        }

    def _pricebook(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        return {
            "PRICEBOOK_ID": rid,
            "NAME": "Standard" if rid == 1 else f"Partner {rid}",
            "DESCRIPTION": None,
            "CURRENCY_CODE": "EUR",
            "IS_STANDARD": rid == 1,
            "ACTIVE": True,
            "OWNER_USER_ID": 1,
            "CREATED_USER_ID": 1,
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
        }

    def _quotation(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        opps: list[int | None] = [*self.context.get("Opportunities", [])] or [None]
        return {
            "QUOTE_ID": rid,
            "QUOTATION_NAME": f"Quote {rid}",
            "OPPORTUNITY_ID": rng.choice(opps),
            "PRICEBOOK_ID": 1,
            "QUOTATION_NUMBER": f"Q-{rid:05d}",
            "QUOTE_STATUS": rng.choice(["Draft", "Sent", "Accepted"]),
            "LINE_ITEM_COUNT": 0,
            "IS_SYNCING": False,
            "QUOTATION_CURRENCY_CODE": "EUR",
            "SUBTOTAL": 0.0,
            "DISCOUNT": 0.0,
            "TOTAL_PRICE": 0.0,
            "GRAND_TOTAL": 0.0,
            "OWNER_USER_ID": 1,
            "CREATED_USER_ID": 1,
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
        }

    def _link(self, kind: str, rid: int, target: str, target_id: int) -> dict[str, Any]:
        return {
            "LINK_ID": rid,
            "OBJECT_NAME": kind,
            "OBJECT_ID": rid,
            "LINK_OBJECT_NAME": target,
            "LINK_OBJECT_ID": target_id,
            "ROLE": None,
            "DETAILS": None,
            "RELATIONSHIP_ID": None,
            "IS_FORWARD": True,
        }

    def _emails(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, _ = _dates(rng)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        return {
            "EMAIL_ID": rid,
            "EMAIL_FROM": f"{first}.{last}@example.com".lower(),
            "SUBJECT": rng.choice(["Quote follow-up", "Meeting notes", "Re: delivery dates"]),
            "EMAIL_DATE_UTC": created,
            "FORMAT": "HTML",
            "SIZE": rng.randint(2_000, 90_000),
            "OWNER_USER_ID": self._user(rng),
            "DATE_CREATED_UTC": created,
            "CREATED_USER_ID": self._user(rng),
            "TAGS": [],
            "LINKS": [self._link("Email", rid, "Contact", rng.choice(self.context["Contacts"]))],
        }

    def _milestones(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        done = rng.random() < 0.4
        return {
            "MILESTONE_ID": rid,
            "TITLE": rng.choice(["Kick-off", "Design sign-off", "Go-live", "Handover"]),
            "COMPLETED": done,
            "DUE_DATE": updated[:10] + " 00:00:00",
            "OWNER_USER_ID": self._user(rng),
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "COMPLETED_DATE_UTC": updated if done else None,
            "PROJECT_ID": rng.choice(self.context["Projects"]),
            "RESPONSIBLE_USER": self._user(rng),
        }

    def _pricebookentry(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        return {
            "PRICEBOOK_ENTRY_ID": rid,
            "PRICEBOOK_ID": rng.choice(self.context["Pricebook"]),
            "PRODUCT_ID": rng.choice(self.context["Product"]),
            "CURRENCY_CODE": "EUR",
            "PRICE": rng.choice([49.0, 120.0, 499.5, 1250.0]),
            "USE_STANDARD_PRICE": False,
            "ACTIVE": True,
            "CREATED_USER_ID": 1,
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
        }

    def _line(self, rng: random.Random) -> dict[str, Any]:
        quantity, price = rng.randint(1, 20), rng.choice([49.0, 120.0, 499.5])
        created, updated = _dates(rng)
        return {
            "PRICEBOOK_ENTRY_ID": rng.choice(self.context["PricebookEntry"]),
            "CURRENCY_CODE": "EUR",
            "DESCRIPTION": rng.choice(["Licence", "Installation", "Support, one year"]),
            "QUANTITY": quantity,
            "LIST_PRICE": price,
            "UNIT_PRICE": price,
            "SUBTOTAL": quantity * price,
            "DISCOUNT": 0.0,
            "TOTAL_PRICE": quantity * price,
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
        }

    def _opportunitylineitem(self, rng: random.Random, rid: int) -> dict[str, Any]:
        line = self._line(rng)
        return {
            "OPPORTUNITY_ITEM_ID": rid,
            "OPPORTUNITY_ID": rng.choice(self.context["Opportunities"]),
            "SERVICE_DATE": line["DATE_CREATED_UTC"][:10] + " 00:00:00",
            **line,
        }

    def _quotationlineitem(self, rng: random.Random, rid: int) -> dict[str, Any]:
        return {
            "QUOTATION_ITEM_ID": rid,
            "QUOTE_ID": rng.choice(self.context["Quotation"]),
            **self._line(rng),
        }

    def _prospect(self, rng: random.Random, rid: int) -> dict[str, Any]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        created, updated = _dates(rng)
        return {
            "PROSPECT_ID": rid,
            "FIRST_NAME": first,
            "LAST_NAME": last,
            "EMAIL_ADDRESS": f"{first}.{last}.{rid}@prospect.example".lower(),
            "SCORE": rng.randint(0, 100),
            "GRADE": rng.choice(["A", "B", "C"]),
            "DO_NOT_EMAIL": rng.random() < 0.1,
            "OWNER_USER_ID": self._user(rng),
            "CREATED_USER_ID": 1,
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "TAGS": [],
        }

    def _ticket(self, rng: random.Random, rid: int) -> dict[str, Any]:
        created, updated = _dates(rng)
        return {
            "TICKET_ID": rid,
            "ORGANISATION_ID": rng.choice(self.context["Organisations"]),
            "TICKET_TYPE": rng.choice(["Question", "Problem", "Incident"]),
            "SUBJECT": rng.choice(["Cannot log in", "Invoice query", "Delivery late"]),
            "TICKET_STATUS": rng.choice(["Open", "Pending", "Solved"]),
            "PRIORITY": rng.choice(["Low", "Normal", "High"]),
            "CONTACT_ID": rng.choice(self.context["Contacts"]),
            "CREATED_USER_ID": 1,
            "OWNER_USER_ID": self._user(rng),
            "DATE_CREATED_UTC": created,
            "DATE_UPDATED_UTC": updated,
            "TICKET_NUMBER": f"T-{rid}",
            "SOURCE": rng.choice(["Email", "Web", "Phone"]),
            "TAGS": [],
        }


# collection -> records in the committed seed
SEED_COUNTS = {
    "Organisations": 60,
    "Contacts": 220,
    "Leads": 80,
    "Opportunities": 50,
    "Projects": 15,
    "Tasks": 60,
    "Events": 25,
    "Notes": 40,
    "Product": 8,
    "Pricebook": 2,
    "Quotation": 6,
    "Emails": 30,
    "Milestones": 20,
    "PricebookEntry": 12,
    "OpportunityLineItem": 40,
    "QuotationLineItem": 15,
    "Prospect": 25,
    "Ticket": 20,
}
CUSTOM_SEED_COUNTS = {"Site__c": 30, "Asset__c": 80}
GENERATED = tuple(SEED_COUNTS)  # standard objects --generate can make (and any custom object)
ID_BASE = {name: 1000 * (n + 1) for n, name in enumerate(SEED_COUNTS)}  # readable, distinct ids


def seed_account() -> dict[str, Any]:
    """The whole seed account as it is written to `sample_data/sandbox/`."""
    data: dict[str, Any] = dict(_reference_data())
    data["Countries"] = _dedupe_countries(data["Countries"])
    context = {"Users": [u["USER_ID"] for u in data["Users"]]}
    fields = custom_object_fields()
    custom = {o["OBJECT_NAME"]: (o, fields[o["OBJECT_NAME"]]) for o in CUSTOM_OBJECTS}
    gen = Generator("seed", context, custom)
    bases = {**ID_BASE, **{name: 100_000 * (n + 1) for n, name in enumerate(CUSTOM_SEED_COUNTS)}}
    for collection, count in {**SEED_COUNTS, **CUSTOM_SEED_COUNTS}.items():
        records = list(gen.records(collection, bases[collection] + 1, count))
        data[collection] = records
        context[collection] = [r[next(iter(r))] for r in records]
    _realistic(data)
    data["file_attachments"] = _attachments(data)
    data["comments"] = _comments(data)
    data["custom_objects"] = CUSTOM_OBJECTS
    data["custom_fields"] = {**custom_field_definitions(), **fields}
    data["instance"] = INSTANCE
    return data


# Text as live accounts hold it (docs/api.md §10: records of ~100 KB on a large tenant, notes
# with newlines and HTML): every script a user may write in, and the UTF-8 a spreadsheet or
# a code page cannot always hold.
SCRIPTS = [
    "Łódź, Kraków, Gdańsk — Zażółć gęślą jaźń.",
    "Größe, Straße, Ärger über Öl; Œuvre, façade, naïve, São Paulo.",
    "İstanbul, Ağaç, Işık, Şişli.",
    "Αθήνα, Θεσσαλονίκη — Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "Москва, Санкт-Петербург: Съешь же ещё этих мягких французских булок.",
    "القاهرة، الرياض — نص عربي من اليمين إلى اليسار.",
    "תל אביב, ירושלים — טקסט בעברית.",
    "東京都千代田区、大阪 — 日本語のテキスト、ｶﾀｶﾅ。",
    "北京市、上海 — 中文文本。",
    "서울특별시, 부산 — 한국어 텍스트.",
    "मुंबई, दिल्ली — हिन्दी पाठ।",
    "กรุงเทพมหานคร — ข้อความภาษาไทย",
    "Emoji 👍🏽 and a zero-width joiner 👩‍💻, a non-breaking space ( ) and a tab (\t).",
]


def long_text(rid: int, chars: int) -> str:
    """Paragraphs of every script, separated by blank lines, `chars` characters long."""
    paragraphs: list[str] = []
    n, length = rid, 0
    while length < chars:
        paragraphs.append(f"{len(paragraphs) + 1}. {SCRIPTS[n % len(SCRIPTS)]}")
        length += len(paragraphs[-1]) + 2
        n += 1
    return "\n\n".join(paragraphs)[:chars]


def _realistic(data: dict[str, Any]) -> None:
    """Some seed records as live ones are: a long background, an HTML note, an address in
    other letters, a value with spaces around it. Chosen by id, so the rest stay as they are."""
    for record in data["Contacts"]:
        rid = record["CONTACT_ID"]
        if rid % 20 == 7:
            record["BACKGROUND"] = long_text(rid, 3_900)  # the field holds 4,000
        if rid % 25 == 11:
            local, _, domain = str(record["EMAIL_ADDRESS"]).partition("@")
            record["EMAIL_ADDRESS"] = f"{local.title()}@{domain.upper()}"
        if rid % 30 == 13 and record.get("TITLE"):
            record["TITLE"] = f" {record['TITLE']}  "
    for record in data["Organisations"]:
        if record["ORGANISATION_ID"] % 15 == 4:
            record["BACKGROUND"] = long_text(record["ORGANISATION_ID"], 2_500)
    for record in data["Notes"]:
        rid = record["NOTE_ID"]
        if rid % 5 == 2:
            items = "".join(f"\n  <li>{SCRIPTS[(rid + k) % len(SCRIPTS)]}</li>" for k in range(4))
            record["BODY"] = (
                f"<h2>Call summary</h2>\n<p>Agreed &amp; signed: <b>yes</b>.</p>\n<ul>{items}\n</ul>"
                "\n<p>Next call: Tuesday.<br/>\n— Sent from the road</p>"
            )


def pad_record(record: dict[str, Any], kb: int, definitions: list[dict[str, Any]]) -> None:
    """`--record-kb N`: a record of about N KB, as on a large live tenant. Its long text field
    (BACKGROUND and the like) is filled to the 4,000 characters it holds, the rest goes into
    its first multi-line custom field; a record without one is as large as its field allows."""
    rid = int(next(iter(record.values())))
    text_fields = ("BACKGROUND", "OPPORTUNITY_DETAILS", "PROJECT_DETAILS", "DETAILS", "BODY")
    want = kb * 1024 - len(json.dumps(record, ensure_ascii=False).encode())
    for name in text_fields:
        if name in record and want > 0:
            record[name] = long_text(rid, min(4_000, want))
            want -= len(record[name].encode())
            break
    multiline = [d["FIELD_NAME"] for d in definitions if d.get("FIELD_TYPE") == "MULTILINETEXT"]
    if want > 0 and multiline:
        # as many UTF-8 bytes as are still wanted (a character may take four)
        text = long_text(rid, want).encode()[:want].decode(errors="ignore")
        values = [c for c in record.get("CUSTOMFIELDS", []) if c["FIELD_NAME"] != multiline[0]]
        values.append({"FIELD_NAME": multiline[0], "FIELD_VALUE": text})
        record["CUSTOMFIELDS"] = values


def _attachments(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A few files on contacts, organisations and opportunities (their content is made by
    the sandbox from id, name and size)."""
    files = [
        ("Contacts", "signed-nda.pdf", "application/pdf", 48_213, 1),
        ("Contacts", "business card.jpg", "image/jpeg", 120_400, 3),
        ("Organisations", "framework-agreement.pdf", "application/pdf", 310_877, 1),
        ("Organisations", "invoice 2026-07.pdf", "application/pdf", 23_501, 2),
        (
            "Opportunities",
            "proposal v3.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            88_120,
            1,
        ),
        ("Opportunities", "site photo.png", "image/png", 412_002, 3),
        ("Opportunities", "../../etc/passwd", "text/plain", 64, None),  # a hostile name
    ]
    out = []
    for n, (parent, name, kind, size, category) in enumerate(files, start=1):
        records = data[parent]
        record = records[(7 * n) % len(records)]
        out.append(
            {
                "FILE_ID": 900 + n,
                "FILE_NAME": name,
                "CONTENT_TYPE": kind,
                "FILE_SIZE": size,
                "FILE_CATEGORY_ID": category,
                "OWNER_USER_ID": 1,
                "DATE_CREATED_UTC": f"2026-06-{n:02d} 10:00:00",
                "DATE_UPDATED_UTC": f"2026-06-{n:02d} 10:00:00",
                "URL": None,
                "PARENT_OBJECT": parent,
                "PARENT_ID": record[next(iter(record))],
            }
        )
    return out


def _comments(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A few comments on notes, tasks, emails and tickets."""
    texts = [
        ("Notes", "Agreed, let's send the price list on Monday."),
        ("Notes", "Customer confirmed by phone."),
        ("Tasks", "Moved to next week: the depot is closed."),
        ("Emails", "Forwarded to finance."),
        ("Ticket", "Reproduced on version 4.2; fix in the next release."),
        ("Ticket", 'A "quoted" answer,\nover two lines'),
    ]
    out = []
    for n, (parent, body) in enumerate(texts, start=1):
        records = data[parent]
        record = records[(5 * n) % len(records)]
        out.append(
            {
                "COMMENT_ID": 700 + n,
                "OWNER_USER_ID": 1 + n % 3,
                "BODY": body,
                "DATE_CREATED_UTC": f"2026-09-{n:02d} 15:30:00",
                "DATE_UPDATED_UTC": f"2026-09-{n:02d} 15:30:00",
                "PARENT_OBJECT": parent,
                "PARENT_ID": record[next(iter(record))],
            }
        )
    return out


def write_seed(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in seed_account().items():
        (directory / f"{name}.json").write_text(
            json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    write_seed(Path(sys.argv[1] if len(sys.argv) > 1 else "sample_data/sandbox"))
