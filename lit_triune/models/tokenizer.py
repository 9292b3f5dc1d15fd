"""A Qwen-style byte-level BPE tokenizer, trained here from a built-in corpus so nothing is downloaded.

Layout follows Qwen2.5: BPE pieces first, then the special tokens; digits are split one per token
(as Qwen does) so numbers are learnable by a tiny model. `<think>`, `</think>`, `<answer>` and
`</answer>` are *ordinary* added tokens: `decode(..., skip_special_tokens=True)` keeps them, as the
real Qwen tokenizer keeps them, otherwise every format reward would silently be 0.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
REASONING_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]

# Qwen2.5-VL's template, restated: a default system turn, images as vision_start/pad/end.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_WORDS = """
the a an of to in on at is are was were be it this that these those there here what which who how many much
count number numbers shape shapes object objects image picture figure chart bar bars graph plot value values
square squares circle circles triangle triangles star stars rectangle rectangles diamond cross hexagon
red green blue yellow orange purple black white gray grey pink brown cyan magenta color colour colors
left right top bottom middle center centre upper lower corner above below next after before between
one two three four five six seven eight nine ten eleven twelve zero none
plus minus times divided by equals equal sum difference product total area perimeter length width height
angle side sides radius degrees answer question think reasoning step steps first then finally so therefore
find give output locate box boxes bounding coordinates label labels detect detection ground grounding
read text word words letter letters ocr write written characters string
pattern sequence comes continue missing puzzle rule series
tallest shortest largest smallest highest lowest most least more less than greater compare
please carefully let us me we you your solve problem explain answer final put inside tags format
check again verify wait yet re-check rethink re-examine
json list bbox_2d point x y x1 y1 x2 y2 pixels frame
A B C D E F G H I J K L M N O P Q R S T U V W X Y Z
apple banana cat dog house tree car book sun moon milk fish bird road lamp door
"""
_SNIPPETS = [
    "[{'bbox_2d': [12, 34, 56, 78], 'label': 'red square'}]",
    '[{"bbox_2d": [120, 340, 560, 780], "label": "circle"}]',
    "<think> I count the shapes. </think> <answer> 3 </answer>",
    "<think>Let me think step by step.</think><answer>42</answer>",
    "12 + 7 = 19, 8 - 3 = 5, 6 * 4 = 24, 9 / 3 = 3, 3.5, -2, 100%, 1/2, (a, b); x^2, \\boxed{7}",
    "How many squares are in the image? Output the final answer in <answer> </answer> tags.",
    "First output the thinking process in <think> </think> tags and then the final answer.",
]


def training_corpus() -> list[str]:
    """The built-in lines both tokenizers train on (this one and `models/qwen_tokenizer.py`)."""
    words = _WORDS.split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    lines += [w.capitalize() for w in words] + _SNIPPETS
    # Repeat so merges of the frequent words win over one-off byte pairs; order is fixed -> deterministic.
    return lines * 4


def train_tokenizer(vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Trains the BPE deterministically and wraps it as a HF fast tokenizer with Qwen's special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TAGS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        padding_side="left",
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
