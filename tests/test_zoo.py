"""The benchmark zoo against a line-by-line transcription of CoOp's readers and Dassl's split rules, on every
benchmark's fixture in its official layout; and the messages a missing or mis-laid dataset gives."""

import csv
import json
import math
import os
import random
import warnings
from collections import OrderedDict, defaultdict
import numpy as np
import pytest
import torch
from PIL import Image
from clipkit.analysis.probes import hard_negative_eval, winoground_eval
from clipkit.data.sources import BadInput
from clipkit.data.zoo import (
    BENCHMARKS,
    SUGARCREPE_FILES,
    DatasetMissing,
    aro_accuracy,
    load_benchmark,
    write_fixture,
)
from clipkit.models import create


# ---- the official code, transcribed: KaiyangZhou/Dassl.pytorch dassl/data/datasets/base_dataset.py,
# dassl/utils/tools.py, and KaiyangZhou/CoOp datasets/*.py


class Datum:
    def __init__(self, impath="", label=0, domain=0, classname=""):
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self):
        return self._impath

    @property
    def label(self):
        return self._label

    @property
    def classname(self):
        return self._classname


def listdir_nohidden(path, sort=False):
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def split_dataset_by_label(data_source):
    output = defaultdict(list)
    for item in data_source:
        output[item.label].append(item)
    return output


def generate_fewshot_dataset(*data_sources, num_shots=-1, repeat=False):
    if num_shots < 1:
        if len(data_sources) == 1:
            return data_sources[0]
        return data_sources
    output = []
    for data_source in data_sources:
        tracker = split_dataset_by_label(data_source)
        dataset = []
        for label, items in tracker.items():
            if len(items) >= num_shots:
                sampled_items = random.sample(items, num_shots)
            else:
                if repeat:
                    sampled_items = random.choices(items, k=num_shots)
                else:
                    sampled_items = items
            dataset.extend(sampled_items)
        output.append(dataset)
    if len(output) == 1:
        return output[0]
    return output


def get_lab2cname(data_source):
    container = set()
    for item in data_source:
        container.add((item.label, item.classname))
    mapping = {label: classname for label, classname in container}
    labels = list(mapping.keys())
    labels.sort()
    classnames = [mapping[label] for label in labels]
    return mapping, classnames


def read_split(filepath, path_prefix):  # OxfordPets.read_split
    def _convert(items):
        out = []
        for impath, label, classname in items:
            impath = os.path.join(path_prefix, impath)
            item = Datum(impath=impath, label=int(label), classname=classname)
            out.append(item)
        return out

    with open(filepath) as f:
        split = json.load(f)
    train = _convert(split["train"])
    val = _convert(split["val"])
    test = _convert(split["test"])
    return train, val, test


def subsample_classes(*args, subsample="all"):  # OxfordPets.subsample_classes
    assert subsample in ["all", "base", "new"]
    if subsample == "all":
        return args
    dataset = args[0]
    labels = set()
    for item in dataset:
        labels.add(item.label)
    labels = list(labels)
    labels.sort()
    n = len(labels)
    m = math.ceil(n / 2)
    if subsample == "base":
        selected = labels[:m]
    else:
        selected = labels[m:]
    relabeler = {y: y_new for y_new, y in enumerate(selected)}
    output = []
    for dataset in args:
        dataset_new = []
        for item in dataset:
            if item.label not in selected:
                continue
            item_new = Datum(impath=item.impath, label=relabeler[item.label], classname=item.classname)
            dataset_new.append(item_new)
        output.append(dataset_new)
    return output


def aircraft_read_data(dataset_dir, image_dir, cname2lab, split_file):  # FGVCAircraft.read_data
    filepath = os.path.join(dataset_dir, split_file)
    items = []
    with open(filepath, "r") as f:
        lines = f.readlines()
        for line in lines:
            line = line.strip().split(" ")
            imname = line[0] + ".jpg"
            classname = " ".join(line[1:])
            impath = os.path.join(image_dir, imname)
            label = cname2lab[classname]
            item = Datum(impath=impath, label=label, classname=classname)
            items.append(item)
    return items


def read_classnames(text_file):  # ImageNet.read_classnames
    classnames = OrderedDict()
    with open(text_file, "r") as f:
        lines = f.readlines()
        for line in lines:
            line = line.strip().split(" ")
            folder = line[0]
            classname = " ".join(line[1:])
            classnames[folder] = classname
    return classnames


# Dassl lists a class folder's images with os.listdir, in the file system's order; clipkit sorts them (so a
# draw is the same on every machine), and the transcription below does too: sort=True where the official
# passes nothing. ImageNetV2's loop runs over range(1000); here over the fixture's classes.


def imagenet_read_data(image_dir, classnames, split_dir):  # ImageNet.read_data
    split_dir = os.path.join(image_dir, split_dir)
    folders = sorted(f.name for f in os.scandir(split_dir) if f.is_dir())
    items = []
    for label, folder in enumerate(folders):
        imnames = listdir_nohidden(os.path.join(split_dir, folder), sort=True)
        classname = classnames[folder]
        for imname in imnames:
            impath = os.path.join(split_dir, folder, imname)
            item = Datum(impath=impath, label=label, classname=classname)
            items.append(item)
    return items


TO_BE_IGNORED = ["README.txt"]


def shifted_read_data(image_dir, classnames):  # ImageNetA.read_data (ImageNetR and ImageNetSketch alike)
    folders = listdir_nohidden(image_dir, sort=True)
    folders = [f for f in folders if f not in TO_BE_IGNORED]
    items = []
    for label, folder in enumerate(folders):
        imnames = listdir_nohidden(os.path.join(image_dir, folder), sort=True)
        classname = classnames[folder]
        for imname in imnames:
            impath = os.path.join(image_dir, folder, imname)
            item = Datum(impath=impath, label=label, classname=classname)
            items.append(item)
    return items


def v2_read_data(image_dir, classnames, n_classes):  # ImageNetV2.read_data
    folders = list(classnames.keys())
    items = []
    for label in range(n_classes):
        class_dir = os.path.join(image_dir, str(label))
        imnames = listdir_nohidden(class_dir, sort=True)
        folder = folders[label]
        classname = classnames[folder]
        for imname in imnames:
            impath = os.path.join(class_dir, imname)
            item = Datum(impath=impath, label=label, classname=classname)
            items.append(item)
    return items


def official(name, root, num_shots, seed, subsample):
    """What CoOp's dataset class holds after __init__ with cfg.SEED = seed (set_random_seed seeds Python's
    generator first): {split: Datum list}, and the class names of train_x."""
    b = BENCHMARKS[name]
    dataset_dir = os.path.join(root, b.folder)
    image_dir = os.path.join(dataset_dir, b.image_dir) if b.image_dir else dataset_dir
    random.seed(seed)
    if b.split_file:
        train, val, test = read_split(os.path.join(dataset_dir, b.split_file), image_dir)
    elif name == 'fgvc_aircraft':
        with open(os.path.join(dataset_dir, "variants.txt"), "r") as f:
            classnames = [line.strip() for line in f.readlines()]
        cname2lab = {c: i for i, c in enumerate(classnames)}
        train, val, test = (
            aircraft_read_data(dataset_dir, image_dir, cname2lab, f"images_variant_{part}.txt")
            for part in ('train', 'val', 'test')
        )
    elif name == 'imagenet':
        classnames = read_classnames(os.path.join(dataset_dir, "classnames.txt"))
        train = imagenet_read_data(image_dir, classnames, "train")
        test = imagenet_read_data(image_dir, classnames, "val")
        if num_shots >= 1:
            train = generate_fewshot_dataset(train, num_shots=num_shots)
        train, test = subsample_classes(train, test, subsample=subsample)
        return {'train': train, 'val': test, 'test': test}, get_lab2cname(train)[1]
    else:
        classnames = read_classnames(os.path.join(dataset_dir, "classnames.txt"))
        if name == 'imagenetv2':
            data = v2_read_data(image_dir, classnames, len(classnames))
        else:
            data = shifted_read_data(image_dir, classnames)
        (data,) = subsample_classes(data, subsample=subsample)
        return {'test': data}, get_lab2cname(data)[1]
    if num_shots >= 1:
        train = generate_fewshot_dataset(train, num_shots=num_shots)
        val = generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
    train, val, test = subsample_classes(train, val, test, subsample=subsample)
    return {'train': train, 'val': val, 'test': test}, get_lab2cname(train)[1]


# ---- the checks


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    for name in BENCHMARKS:
        write_fixture(name, root, per_class=(6, 5, 3))
    return root


CLASSIFICATION = sorted(name for name, b in BENCHMARKS.items() if b.kind == 'classification')


@pytest.mark.parametrize('name', CLASSIFICATION)
def test_every_loader_follows_the_official_code(name, data_root):
    settings = [(0, 1, 'all'), (2, 1, 'all'), (4, 2, 'base'), (5, 3, 'new'), (16, 1, 'all')]
    for shots, seed, subsample in settings:  # 16 shots: more than a class has (Dassl keeps them all)
        tasks = load_benchmark(name, data_root, shots=shots, seed=seed, subsample=subsample)
        splits, classnames = official(name, str(data_root), shots, seed, subsample)
        assert list(tasks) == list(splits), f'{name}: the splits'
        for part, items in splits.items():
            ours = tasks[part]
            where = f'{name} {part} (shots {shots}, seed {seed}, {subsample})'
            assert list(ours.meta.filepath) == [item.impath for item in items], f'{where}: images and order'
            assert ours.labels.tolist() == [item.label for item in items], f'{where}: labels'
            assert ours.classnames == [c.replace('_', ' ') for c in classnames], f'{where}: class names'
            assert ours.templates == [BENCHMARKS[name].template], f'{where}: CoOp template'


def test_base_and_new_split_the_classes(data_root):
    base = load_benchmark('oxford_flowers', data_root, subsample='base')['test']
    new = load_benchmark('oxford_flowers', data_root, subsample='new')['test']
    assert base.classnames == ['pink primrose', 'hard-leaved pocket orchid']
    assert new.classnames == ['canterbury bells', 'sweet pea']
    assert set(base.labels.tolist()) == set(new.labels.tolist()) == {0, 1}, 'each half relabelled from 0'


def test_a_missing_dataset_names_the_path_layout_and_source(tmp_path):
    with pytest.raises(DatasetMissing, match=r'dtd: expected .*dtd\. The official layout is dtd/\{images/'):
        load_benchmark('dtd', tmp_path)
    (tmp_path / 'dtd' / 'images').mkdir(parents=True)
    with pytest.raises(DatasetMissing, match=r"split_zhou_DescribableTextures\.json.*CoOp's DATASETS\.md"):
        load_benchmark('dtd', tmp_path)
    (tmp_path / 'imagenet').mkdir()
    with pytest.raises(DatasetMissing, match='classnames.txt'):
        load_benchmark('imagenet', tmp_path)
    with pytest.raises(ValueError, match='did you mean'):
        load_benchmark('oxford_pet', tmp_path)


def test_a_listed_image_missing_on_disk_is_named_or_counted(tmp_path):
    write_fixture('ucf101', tmp_path)
    gone = sorted((tmp_path / 'ucf101' / 'UCF-101-midframes').rglob('*.jpg'))[:2]
    for path in gone:
        path.unlink()
    with pytest.raises(BadInput, match=gone[0].name):
        load_benchmark('ucf101', tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        tasks = load_benchmark('ucf101', tmp_path, skip_missing=True)
    skipped = sum(sum(t.meta.attrs['report']['skipped'].values()) for t in tasks.values())
    assert skipped == 2, 'both missing images counted'
    assert any('skipped' in str(w.message) and 'bad rows' in str(w.message) for w in caught), (
        'a warning says so'
    )
    listed = {row['where'] for t in tasks.values() for row in t.meta.attrs['report']['skipped_rows']}
    assert listed == {str(p) for p in gone}, 'the report names each missing file'


@pytest.mark.parametrize('name', ['flickr30k', 'mscoco'])
def test_karpathy_splits(name, data_root):
    b = BENCHMARKS[name]
    folder = data_root / b.folder
    dataset = json.loads((folder / b.split_file).read_text())
    sets = load_benchmark(name, data_root)
    for part in ('train', 'val', 'test'):
        wanted = (
            ['train', 'restval'] if part == 'train' else [part]
        )  # COCO's restval trains, as Karpathy's does
        images = [img for img in dataset['images'] if img['split'] in wanted]
        paths = [
            os.path.join(folder, b.image_dir, img.get('filepath', ''), img['filename']) for img in images
        ]
        captions = [s['raw'] for img in images for s in img['sentences']]
        owner = [i for i, img in enumerate(images) for _ in img['sentences']]
        assert [os.path.normpath(p) for p in sets[part].images.items] == [os.path.normpath(p) for p in paths]
        assert sets[part].captions == captions and sets[part].caption_image.tolist() == owner
    if name == 'mscoco':
        assert any(img['split'] == 'restval' for img in dataset['images']), 'the fixture has restval images'


def test_a_missing_retrieval_image_takes_its_captions_with_it(tmp_path):
    write_fixture('flickr30k', tmp_path)
    test = load_benchmark('flickr30k', tmp_path)['test']
    gone = test.images.items[1]
    os.remove(gone)
    with pytest.raises(BadInput, match=os.path.basename(gone)):
        load_benchmark('flickr30k', tmp_path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        kept = load_benchmark('flickr30k', tmp_path, skip_missing=True)['test']
    assert len(kept.images) == len(test.images) - 1 and len(kept.captions) == len(test.captions) - 2
    assert kept.caption_image.tolist() == [i for i in range(len(kept.images)) for _ in range(2)]
    assert kept.report['skipped'] == {'missing file': 1}


# ---- compositionality: RAIVNLab/sugar-crepe main_eval.py and mertyg/vision-language-models-are-bows
# dataset_zoo/aro_datasets.py, transcribed


def text_retrieval(pos_text, neg_text, image, model, tokenizer, transform):  # sugar-crepe main_eval.py
    pos_text = tokenizer(pos_text)
    pos_text_embedding = model.encode_text(pos_text, normalize=True)
    neg_text = tokenizer(neg_text)
    neg_text_embedding = model.encode_text(neg_text, normalize=True)
    image_embedding = model.encode_image(transform(image).unsqueeze(dim=0), normalize=True)
    pos_score = pos_text_embedding @ image_embedding.t()
    neg_score = neg_text_embedding @ image_embedding.t()
    return 1 if pos_score.item() > neg_score.item() else 0


def sugarcrepe_evaluate(image_root, dataset, model, tokenizer, transform):  # sugar-crepe main_eval.py
    metrics = {}
    for c, data_dict in dataset.items():
        correct_cnt = 0
        for i, data in data_dict.items():
            image_path = os.path.join(image_root, data['filename'])
            image = Image.open(image_path)
            correct = text_retrieval(
                data['caption'], data['negative_caption'], image, model, tokenizer, transform
            )
            correct_cnt += correct
        count = len(data_dict)
        metrics[c] = correct_cnt / count
    return metrics


def aro_case(test_case, image_dir):  # VG_Relation.__getitem__, without the transform
    image = Image.open(os.path.join(image_dir, test_case["image_path"])).convert('RGB')
    image = image.crop(
        (
            test_case["bbox_x"],
            test_case["bbox_y"],
            test_case["bbox_x"] + test_case["bbox_w"],
            test_case["bbox_y"] + test_case["bbox_h"],
        )
    )
    return image, [test_case["false_caption"], test_case["true_caption"]]


def aro_evaluate(scores, kinds, min_count):  # VG_Relation / VG_Attribution.evaluate_scores
    preds = np.argmax(np.squeeze(scores, axis=1), axis=-1)
    correct_mask = preds == 1
    records = {}
    kinds = np.array(kinds)
    for kind in np.unique(kinds):
        mask = kinds == kind
        if mask.sum() < max(min_count, 1):
            continue
        records[kind] = correct_mask[mask].mean()
    return records


@pytest.fixture(scope='module')
def untrained():
    torch.manual_seed(0)
    model, tokenizer, preprocess = create('tiny-rn')
    return model.eval(), tokenizer, preprocess


def test_sugarcrepe_scores_as_the_official_loop(data_root, untrained):
    model, tokenizer, preprocess = untrained
    folder = data_root / 'sugarcrepe'
    dataset = {c: json.loads((folder / f'{c}.json').read_text()) for c in SUGARCREPE_FILES}
    with torch.no_grad():
        official_metrics = sugarcrepe_evaluate(str(folder / 'val2017'), dataset, model, tokenizer, preprocess)
    ours = hard_negative_eval(model, tokenizer, load_benchmark('sugarcrepe', data_root), preprocess)
    assert dict(zip(ours.type, ours.accuracy)) == pytest.approx(official_metrics)
    assert set(ours.n) == {len(d) for d in dataset.values()}


@pytest.mark.parametrize(
    'name, min_count', [('vg_relation', 0), ('vg_attribution', 0), ('vg_attribution', 25)]
)
def test_aro_crops_and_scores_as_the_official_code(name, min_count, data_root, untrained):
    model, tokenizer, preprocess = untrained
    b = BENCHMARKS[name]
    cases = json.loads((data_root / b.folder / b.split_file).read_text())
    images_dir = str(data_root / b.folder / b.image_dir)
    items = load_benchmark(name, data_root)
    scores, kinds = [], []
    with torch.no_grad():
        for i, case in enumerate(cases):
            image, captions = aro_case(case, images_dir)
            assert np.array_equal(np.asarray(items['images'][i]), np.asarray(image)), 'the crop of the box'
            x = model.encode_image(preprocess(image)[None], normalize=True)
            t = model.encode_text(tokenizer(captions), normalize=True)
            scores.append((x @ t.T).numpy()[:, None, :])
            kinds.append(case['relation_name'] if 'relation' in name else '_'.join(case['attributes']))
    official_records = aro_evaluate(np.concatenate(scores), kinds, min_count)
    ours = hard_negative_eval(model, tokenizer, items, preprocess)
    kept = ours[ours.n >= min_count]
    assert dict(zip(kept.type, kept.accuracy)) == pytest.approx(official_records)
    if official_records:
        assert aro_accuracy(ours, min_count) == pytest.approx(np.mean(list(official_records.values())))


def test_winoground_items_and_a_missing_image(data_root, tmp_path):
    lines = (data_root / 'winoground' / 'data' / 'examples.jsonl').read_text().splitlines()
    examples = [json.loads(line) for line in lines]
    items = load_benchmark('winoground', data_root)
    assert items['captions0'] == [e['caption_0'] for e in examples]
    assert [os.path.basename(p) for p in items['images1'].items] == [f"{e['image_1']}.png" for e in examples]
    write_fixture('sugarcrepe', tmp_path)
    gone = tmp_path / 'sugarcrepe' / 'val2017' / '000000000003.jpg'
    gone.unlink()
    with pytest.raises(BadInput, match=gone.name):
        load_benchmark('sugarcrepe', tmp_path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        kept = load_benchmark('sugarcrepe', tmp_path, skip_missing=True)
    assert kept['report']['skipped'] == {'missing file': 1}
    assert len(kept['positives']) == len(kept['negatives']) == len(kept['images'])
    assert sorted(kept['negatives'].item) == list(range(len(kept['images']))), 'items renumbered'


def mmvp_benchmark_model(model, tokenizer, preprocess, benchmark_dir):  # tsb0601/MMVP scripts/evaluate_vlm.py
    image_dir = os.path.join(benchmark_dir, 'MLLM_VLM Images')
    csv_file = os.path.join(benchmark_dir, 'Questions.csv')
    categories = [
        'Orientation and Direction', 'Presence of Specific Features',
        'State and Condition', 'Quantity and Count',
        'Positional and Relational Context', 'Color and Appearance',
        'Structural Characteristics', 'Texts',
        'Viewpoint and Perspective'
    ]  # fmt: skip
    pair_accuracies = {category: 0 for category in categories}
    num_pairs = 0
    with open(csv_file, 'r') as f:
        reader = csv.reader(f)
        next(reader)  # skip header
        for i, row in enumerate(reader):
            qid1, qtype1, statement1 = row
            row = next(reader, None)
            if not row:
                break
            qid2, qtype2, statement2 = row
            qid1, qid2 = int(qid1), int(qid2)
            img1 = Image.open(os.path.join(image_dir, qtype1, f'{qid1}.jpg'))
            img2 = Image.open(os.path.join(image_dir, qtype1, f'{qid2}.jpg'))
            text1 = 'a photo of ' + statement1
            text2 = 'a photo of ' + statement2
            text1 = tokenizer([text1])
            text2 = tokenizer([text2])
            img1 = preprocess(img1).unsqueeze(0)
            img2 = preprocess(img2).unsqueeze(0)
            imgs = torch.cat((img1, img2), dim=0)
            with (
                torch.no_grad()
            ):  # open_clip's model(images, text) gives the features; CLIP's logits from them
                image_features = model.encode_image(imgs, normalize=True)
                logits_per_text1 = (
                    model.logit_scale.exp() * model.encode_text(text1, normalize=True) @ image_features.T
                )
                logits_per_text2 = (
                    model.logit_scale.exp() * model.encode_text(text2, normalize=True) @ image_features.T
                )
                probs1 = logits_per_text1.softmax(dim=-1).cpu().numpy()
                probs2 = logits_per_text2.softmax(dim=-1).cpu().numpy()
            img1_score1 = probs1[0][0]
            img1_score2 = probs2[0][0]
            pred1 = "img1" if img1_score1 > 0.5 else "img2"
            pred2 = "img1" if img1_score2 > 0.5 else "img2"
            gt1 = "img1" if qid1 % 2 == 1 else "img2"
            gt2 = "img1" if qid2 % 2 == 1 else "img2"
            current_category = categories[num_pairs // 15]
            if pred1 == gt1 and pred2 == gt2:
                pair_accuracies[current_category] += 1
            num_pairs += 1
    for category in pair_accuracies:
        pair_accuracies[category] = (pair_accuracies[category] / (num_pairs // len(categories))) * 100
    return pair_accuracies, num_pairs // len(categories)


def test_mmvp_scores_as_the_official_script(data_root, untrained):
    model, tokenizer, preprocess = untrained
    official_pct, per_category = mmvp_benchmark_model(
        model, tokenizer, preprocess, str(data_root / 'mmvp_vlm')
    )
    items = load_benchmark('mmvp_vlm', data_root)
    with torch.no_grad():
        ours = winoground_eval(model, tokenizer, items, preprocess, groups=items['tags'].category)['by_group']
    right = (ours.image * ours.n).round().astype(int).to_dict()
    official_right = {c: round(p * per_category / 100) for c, p in official_pct.items() if c in right}
    assert right == official_right, 'the same pairs right, in the same categories'
    assert sum(official_pct.values()) * per_category / 100 == pytest.approx(sum(right.values()))
