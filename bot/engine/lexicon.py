"""The words people type in answers, per language: data, not code.

Each table is plain text as a native reader writes it (hamza, taa marbuta, ZWNJ and all);
the parser folds every entry with `normalize.fold` before comparing, so spelling variants
that fold alike (ة/ه, أ/ا, ي/ی, ك/ک, with or without ZWNJ) need not be listed twice.
A native Arabic and a native Persian reader review these tables: add a form here, add a
row for it in tests/engine/test_typed_answers.py, and nothing else needs to change.
"""

from __future__ import annotations

# Cardinal numbers 0–10 as words. Persian "نه" is also "no": it counts as 9 only on a
# scored question, never on a yes/no or an option question (see AMBIGUOUS_NUMBER_WORDS).
NUMBER_WORDS: dict[str, dict[int, tuple[str, ...]]] = {
    "ar": {
        0: ("صفر", "زيرو"),
        1: ("واحد", "واحدة", "وحدة", "وحده"),
        2: ("اثنين", "اثنان", "اثنتين", "اثنتان", "إتنين", "اتنين", "ثنتين", "ثنين", "تنين"),
        3: ("ثلاثة", "ثلاث", "تلاتة", "تلات", "ثلاثه"),
        4: ("أربعة", "أربع", "اربعة", "اربع"),
        5: ("خمسة", "خمس"),
        6: ("ستة", "ست", "سته"),
        7: ("سبعة", "سبع", "سبعه"),
        8: ("ثمانية", "ثمانيه", "ثمان", "ثماني", "تمانية", "تمنية", "تمن", "تمانة", "تمان"),
        9: ("تسعة", "تسع", "تسعه"),
        10: ("عشرة", "عشر", "عشره"),
    },
    "fa": {
        0: ("صفر",),
        1: ("یک",),
        2: ("دو",),
        3: ("سه",),
        4: ("چهار", "چار"),
        5: ("پنج",),
        6: ("شش", "شیش"),
        7: ("هفت",),
        8: ("هشت",),
        9: ("نه",),
        10: ("ده",),
    },
    "en": {
        0: ("zero", "nought", "nil"),
        1: ("one",),
        2: ("two",),
        3: ("three",),
        4: ("four",),
        5: ("five",),
        6: ("six",),
        7: ("seven",),
        8: ("eight",),
        9: ("nine",),
        10: ("ten",),
    },
}
# Number words that are also everyday words with another meaning (fa "نه" = no).
AMBIGUOUS_NUMBER_WORDS = ("نه",)

# "the third", for options. Arabic forms are also matched without their article "ال".
ORDINAL_WORDS: dict[str, dict[int, tuple[str, ...]]] = {
    "ar": {
        1: ("الأول", "الأولى", "أول"),
        2: ("الثاني", "الثانية", "التاني", "التانية"),
        3: ("الثالث", "الثالثة", "التالت", "التالتة"),
        4: ("الرابع", "الرابعة"),
        5: ("الخامس", "الخامسة"),
        6: ("السادس", "السادسة"),
        7: ("السابع", "السابعة"),
        8: ("الثامن", "الثامنة"),
        9: ("التاسع", "التاسعة"),
        10: ("العاشر", "العاشرة"),
    },
    "fa": {
        1: ("اول", "اولی", "یکم", "یکمی", "اولین"),
        2: ("دوم", "دومی", "دومین"),
        3: ("سوم", "سومی", "سومین"),
        4: ("چهارم", "چهارمی", "چهارمین"),
        5: ("پنجم", "پنجمی", "پنجمین"),
        6: ("ششم", "ششمی", "ششمین"),
        7: ("هفتم", "هفتمی", "هفتمین"),
        8: ("هشتم", "هشتمی", "هشتمین"),
        9: ("نهم", "نهمی", "نهمین"),
        10: ("دهم", "دهمی", "دهمین"),
    },
    "en": {
        1: ("first", "1st"),
        2: ("second", "2nd"),
        3: ("third", "3rd"),
        4: ("fourth", "4th"),
        5: ("fifth", "5th"),
        6: ("sixth", "6th"),
        7: ("seventh", "7th"),
        8: ("eighth", "8th"),
        9: ("ninth", "9th"),
        10: ("tenth", "10th"),
    },
}

# Words that may stand before an option's number or ordinal: "الخيار ٣", "گزینه ۳", "option 3".
OPTION_WORDS: dict[str, tuple[str, ...]] = {
    "ar": ("الخيار", "خيار", "الاختيار", "اختيار", "رقم", "الرقم", "الإجابة", "الجواب"),
    "fa": ("گزینه", "گزینه‌ی", "گزینهٔ", "شماره", "شماره‌ی", "جواب", "پاسخ"),
    "en": ("option", "choice", "number", "no", "nr", "answer", "the", "one", "pick"),
}

# "N out of M": the word between a score and the top of its scale.
OUT_OF_WORDS: dict[str, tuple[str, ...]] = {
    "ar": ("من", "على", "ع", "/"),
    "fa": ("از", "/"),
    "en": ("of", "out of", "/"),
}

# Short words people put around a score; they change nothing ("نمره ۹", "٨ تقريبا").
SCORE_FILLERS: dict[str, tuple[str, ...]] = {
    "ar": ("تقريبا", "تقريبًا", "حوالي", "حوالى", "درجة", "الدرجة", "درجتي", "تقييمي",
           "التقييم", "تقييم", "أعطي", "اعطي", "أعطيكم", "اعطيكم", "بعطي", "أقول", "اقول",
           "يمكن", "ممكن", "نقطة", "نقاط", "رقم", "هي", "هو", "والله", "بصراحة", "يعني",
           "بعطيكم", "بعطيكن", "أديكم", "اديكم", "هديكم", "حديكم", "بديكم"),
    "fa": ("نمره", "نمرم", "نمره‌ام", "امتیاز", "امتیازم", "تقریبا", "تقریباً", "حدود",
           "حدودا", "حدوداً", "میدم", "می‌دم", "میدهم", "می‌دهم", "بهتون", "بهش", "من",
           "میگم", "می‌گم", "شاید", "راستش", "خب", "خوب", "یه", "نمره‌ی", "بدم",
           "هست", "است"),
    "en": ("around", "about", "approximately", "roughly", "maybe", "probably", "i'd", "id",
           "i", "would", "say", "give", "it", "you", "a", "score", "rating", "my", "is",
           "solid", "like", "points", "point", "hmm", "well"),
}

# Between two numbers these make the answer one of several ("7 or 8"); with a single
# number they leave it unclear ("not 9"), so neither is ever stored as a value.
SCORE_ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "ar": ("أو", "او", "ولا", "بين", "إلى", "الى", "لـ", "حتى", "لحد", "و", "-", "لكن", "بس",
           "مش", "لا"),
    "fa": ("یا", "تا", "بین", "و", "-", "ولی", "اما", "نه"),
    "en": ("or", "to", "between", "and", "-", "but", "not"),
}

# Yes and no, typed alone or as the first words of an answer.
YES: dict[str, tuple[str, ...]] = {
    "ar": ("نعم", "أجل", "أيوه", "أيوة", "أيوا", "ايوه", "ايوا", "إيه", "ايه", "إي", "اي",
           "بلى", "طبعا", "طبعًا", "أكيد", "اكيد", "تمام", "صح", "مضبوط", "اكيد طبعا",
           "إي نعم", "اي نعم", "إي والله", "اي والله", "نعم والله", "أي", "هيه", "ايوة",
           "يب", "يس", "بالتأكيد", "بالضبط", "آه", "اه", "صحيح", "أوكي", "اوكي", "اوك",
           "naam", "aywa", "aiwa", "eh"),
    "fa": ("بله", "بلی", "آره", "اره", "آری", "آرع", "باشه", "حتما", "حتماً", "حله", "آها",
           "اوهوم", "اهوم", "البته", "دقیقا", "دقیقاً", "بعله", "موافقم", "اوکی", "اوکیه",
           "bale", "are", "areh", "baleh"),
    "en": ("yes", "y", "yeah", "yea", "yep", "yup", "sure", "ok", "okay", "of course",
           "definitely", "absolutely", "indeed", "correct", "right", "✅", "👍", "👌"),
}
NO: dict[str, tuple[str, ...]] = {
    "ar": ("لا", "كلا", "لأ", "لاء", "لء", "مش", "مو", "مب", "ابدا", "أبدًا", "أبدا", "أبد",
           "لا شكرا", "لا شكرًا", "لا والله", "لا للأسف", "للأسف لا", "لا طبعا", "ولا",
           "la", "laa", "la2"),
    "fa": ("نه", "نع", "خیر", "نخیر", "نه خیر", "نه‌خیر", "نچ", "نوچ", "اصلا", "اصلاً", "هرگز",
           "نه ممنون", "نه مرسی", "نه متاسفانه", "نه والا", "نه بابا", "مخالفم", "موافق نیستم",
           "na", "nah", "kheir", "nakheir"),
    "en": ("no", "n", "nope", "nah", "nay", "not really", "no thanks", "no thank you",
           "not at all", "never", "no way", "❌", "👎"),
}

# After a yes or a no, these keep its meaning: a polite tail, a filler or a pronoun
# ("لا شكرًا", "نه ممنون", "yes it was").
YESNO_POLITE: dict[str, tuple[str, ...]] = {
    "ar": ("شكرا", "شكرًا", "مشكورين", "مشكور", "والله", "الحمد", "لله", "الحمدلله", "يا",
           "أخي", "اخي", "حبيبي", "خلاص", "جزاكم", "الله", "خير", "للأسف", "فعلا", "فعلًا",
           "طبعا", "طبعًا", "أكيد", "تمام", "المشكلة", "مشكلتي", "كل", "شي", "شيء", "هي", "هو",
           "اخوي", "أخوي", "يعطيكم", "يعطيك", "العافية", "تسلم", "تسلموا", "يسلمو", "جزيلا",
           "جزيلًا"),
    "fa": ("ممنون", "ممنونم", "مرسی", "متشکرم", "متشکر", "سپاس", "سپاسگزارم", "لطفا", "لطفاً",
           "خیلی", "والا", "والله", "دیگه",
           "متاسفانه", "قربان", "قربون", "جان", "حتما", "خداروشکر", "خدا", "رو", "شکر",
           "همه", "چی", "درسته", "مشکل", "مشکلم", "کاملا", "کاملاً", "کامل"),
    "en": ("thanks", "thank", "you", "it", "was", "is", "did", "has", "have", "been", "all",
           "good", "fully", "completely", "really", "indeed", "sir", "please", "sadly",
           "unfortunately", "i", "think", "so", "the", "problem", "issue", "very", "much",
           "totally", "my", "we", "they", "got", "that", "thx", "ty"),
}
# Echoed verbs that say "it was solved / done": they keep a yes, but after a bare no
# ("نه، حل شد") they contradict it unless a negation follows ("نه حل نشد").
YESNO_ECHOES: dict[str, tuple[str, ...]] = {
    "ar": ("تم", "انحلت", "انحلّت", "اتحلت", "اتحلّت", "انحل", "اتحل", "حلت", "حلوها",
           "حلّوها", "انحلت المشكلة", "تحلت", "نحلت", "انتهت", "اتحلّ", "زبطت", "ظبطت",
           "اتظبطت", "انصلحت", "اتصلحت", "تصلحت", "خلصت"),
    "fa": ("حل", "شد", "شده", "حله", "درست", "انجام", "رفع", "برطرف"),
    "en": ("resolved", "solved", "fixed", "sorted", "done", "worked", "helped"),
}
# Negations: they agree with a no and contradict a yes ("بله حل نشد", "yes it wasn't").
NEGATIONS: dict[str, tuple[str, ...]] = {
    "ar": ("ما", "لم", "لن", "ليس", "ليست", "مو", "مش", "مب", "موب", "مهوب", "مافي", "مفيش",
           "ما انحلت", "متحلتش", "ماتحلتش", "محلتش", "محدش", "لسه", "لسا", "لسّا", "بعد",
           "للحين", "مازال", "ما زال", "ما زالت", "لا زال", "لا زالت"),
    "fa": ("نشد", "نشده", "نیست", "نبود", "نه", "ندارم", "نکرد", "نکردن", "نشدش", "هنوز"),
    "en": ("not", "wasn't", "isn't", "didn't", "hasn't", "haven't", "never", "no", "nothing",
           "nt"),
}
# Hedges and contrasts: with any of these a yes or a no is not clear ("بله ولی نه کامل",
# "نعم لكن لا", "yes but"), so the person is asked again.
HEDGES: dict[str, tuple[str, ...]] = {
    "ar": ("لكن", "لكنه", "ولكن", "بس", "غير", "إلا", "الا", "نص", "نوعا", "نوعًا", "يعني",
           "جزئيا", "جزئيًا", "شوي", "شوية", "تقريبا", "تقريبًا", "مش كامل", "ربما", "يمكن",
           "نوعًا ما", "إلى حد ما", "الى حد ما", "لحد ما", "مش أوي", "مش قوي"),
    "fa": ("ولی", "اما", "ولیکن", "منتها", "نصفه", "نیمه", "تقریبا", "تقریباً", "کمی", "یکم",
           "جزئی", "نسبتا", "نسبتاً", "شاید", "یه کم"),
    "en": ("but", "partly", "partially", "kind", "sort", "half", "almost", "mostly",
           "somewhat", "except", "maybe", "though", "however", "still", "yet"),
}

# Typed alone (after folding and dropping punctuation), these move in the survey and are
# never stored as an answer. "/back" and "/skip" work in any language.
BACK_WORDS: dict[str, tuple[str, ...]] = {
    "ar": ("رجوع", "ارجع", "إرجع", "ارجع للخلف", "رجوع للخلف", "السابق", "السؤال السابق",
           "عودة", "الرجوع", "رجّع", "رجعني", "ارجعني", "ارجع ورا", "اللي قبله", "اللي قبلو",
           "السؤال اللي قبله"),
    "fa": ("برگشت", "برگرد", "قبلی", "سوال قبلی", "سؤال قبلی", "سوال قبل", "سؤال قبل",
           "بازگشت", "عقب", "برگرد عقب", "عقب برگرد"),
    "en": ("back", "go back", "previous", "prev", "/back"),
}
SKIP_WORDS: dict[str, tuple[str, ...]] = {
    "ar": ("تخطي", "تخطّي", "تخطى", "تخطي السؤال", "تجاوز", "التالي", "السؤال التالي",
           "اللي بعده", "اللي بعدو", "عدّي", "عدي", "عدي السؤال", "سكيب", "فوّت"),
    "fa": ("رد", "رد شو", "رد شدن", "بگذر", "بعدی", "سوال بعدی", "سؤال بعدی", "پرش",
           "بیخیال", "بی‌خیال", "ردش کن", "رد کن", "سوال بعد", "سؤال بعد"),
    "en": ("skip", "next", "pass", "skip it", "skip this", "next question", "/skip"),
}

# On an optional text question ("Is there anything else…?") these mean "nothing": a skip.
# Every NO above counts as well.
NOTHING: dict[str, tuple[str, ...]] = {
    "ar": ("لا شيء", "لا شي", "ولا شي", "ولا شيء", "ما في", "مافي", "ما فيه", "مافيه",
           "ماكو", "ما عندي", "ماعندي", "ما عندي شي", "لا يوجد", "لا يوجد شيء", "كلا شكرا",
           "لا شكرا", "خلاص", "بس كذا", "بس هيك", "هذا كل شي", "لا تعليق", "لا ملاحظات",
           "لا ملاحظة", "ما في شي", "مافي شي", "ماعندي شي", "ما عندي شيء", "ماكو شي",
           "مفيش", "مافيش", "مفيش حاجة", "ولا حاجة", "لا حاجة", "كله تمام", "كل شي تمام",
           "كل شيء تمام", "لا إضافة", "ما عندي إضافة", "لا مفيش", "لا مفيش حاجة",
           "لا ما عندي", "لا ما في", "لا مافي"),
    "fa": ("هیچی", "هیچ", "هیچ چیز", "هیچ‌چیز", "چیزی نیست", "نه چیزی نیست", "چیزی ندارم",
           "نه ممنون", "نه مرسی", "نه خیر", "نخیر", "همین", "همین بود", "نظری ندارم",
           "ندارم", "نه ندارم", "هیچی ندارم", "نه هیچی", "حرفی ندارم", "نظری نیست",
           "چیزی نه", "فعلا نه", "فعلاً نه", "نه فعلا", "نه چیزی ندارم", "همینا"),
    "en": ("nothing", "nothing else", "none", "nope", "no thanks", "no comment", "n/a", "na",
           "that's all", "thats all", "nothing more", "all good", "no comments"),
}
