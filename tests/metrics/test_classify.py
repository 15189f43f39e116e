import dataclasses

import pytest
import torch
from conftest import needs_fmnist

from raygan.data import load_dataset
from raygan.data.subsets import per_class_indices
from raygan.errors import ConfigError
from raygan.metrics.cas import balanced_labels, cas, classification_scores, gan_test, real_accuracy
from raygan.metrics.classify import RECIPE, ClassicAugment, accuracy, check_recipe, classic_augmentation, train_classifier

FAST = dataclasses.replace(RECIPE, steps=80, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    tr, te = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    return (tr.images, tr.labels), (te.images, te.labels)


def class_queue_sampler(images, labels, restart=False):
    """A 'generator' returning, for each requested label, the next real image of that class
    (in dataset order): sample(labels of images) == images. `restart`: every call starts
    from each class's first image again."""
    pools = {int(c): images[labels == c] for c in labels.unique()}
    pos = {c: 0 for c in pools}

    def sample(req):
        if restart:
            pos.update({c: 0 for c in pools})
        out = []
        for c in req.tolist():
            out.append(pools[c][pos[c] % len(pools[c])])
            pos[c] += 1
        return torch.stack(out)
    return sample


def test_classic_augmentation_parsing():
    assert classic_augmentation("") is None and classic_augmentation("none") is None and classic_augmentation(None) is None
    aug = classic_augmentation("scale, flip,rotate")
    assert isinstance(aug, ClassicAugment) and aug.ops == ("flip", "rotate", "scale")
    assert "hflip(p=0.5)" in aug.describe() and "rotate(+-10deg)" in aug.describe()
    with pytest.raises(ConfigError, match="^unknown classic augmentation 'cutout'; choose from: flip, rotate, translate, scale$"):
        classic_augmentation("flip,cutout")


def test_classic_augmentation_draws_per_image():
    x = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    x[:, :, 3:9, 2:6] = 255  # an asymmetric block
    torch.manual_seed(0)
    flip = classic_augmentation("flip")(x)
    assert flip.dtype == torch.uint8 and flip.shape == x.shape
    flipped = (flip == x.flip(-1)).flatten(1).all(1)
    assert ((flip == x).flatten(1).all(1) ^ flipped).all() and 16 < int(flipped.sum()) < 48  # each its own coin
    torch.manual_seed(0)
    out = classic_augmentation("flip,translate,rotate,scale")(x.float())
    assert out.dtype == torch.float32 and len({tuple(o.flatten().tolist()) for o in out}) > 60  # all differ


def test_training_is_deterministic_and_leaves_global_rng_alone(digits):
    (x, y), _ = digits
    torch.manual_seed(123)
    a = train_classifier(x[:300], y[:300], 10, FAST, seed=1, transform=classic_augmentation("rotate"))
    after = torch.rand(2)
    torch.manual_seed(123)
    b = train_classifier(x[:300], y[:300], 10, FAST, seed=1, transform=classic_augmentation("rotate"))
    assert torch.equal(torch.rand(2), after)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = train_classifier(x[:300], y[:300], 10, FAST, seed=2)
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_cas_of_real_images_equals_the_real_accuracy(digits):
    """A 'generator' that returns, for the requested labels, the very images the real-data
    reference trains on gives exactly the reference accuracy (same recipe, seed, test split)."""
    (x, y), test = digits
    idx = per_class_indices(y, 20, seed=0)
    train = (x[idx], y[idx])
    ref, ref_protocol = real_accuracy(train, test, 10, FAST, seed=3)
    value, protocol = cas(class_queue_sampler(*train), test, 10, recipe=FAST, seed=3, labels=train[1])
    assert value == ref and ref > 0.75
    assert protocol["metric"] == "cas" and protocol["num_samples"] == 200 and protocol["test_count"] == 359
    assert protocol["clf_steps"] == 80 and protocol["clf_seed"] == 3 and ref_protocol["train_count"] == 200


def test_cas_of_a_generator_ignoring_labels_is_chance(digits):
    (x, y), test = digits

    def ignores_labels(req):  # real images of random classes
        return x[torch.randint(0, x.shape[0], (req.shape[0],))]
    value, _ = cas(ignores_labels, test, 10, num_samples=400, recipe=FAST, seed=0)
    good, _ = cas(class_queue_sampler(x, y), test, 10, num_samples=400, recipe=FAST, seed=0)
    assert value < 0.2 and good > 0.85


def test_gan_test_and_scores_together(digits):
    train, (tx, ty) = digits
    net = train_classifier(*train, 10, FAST, seed=0)
    # labels requested are balanced; a sampler of real test images per class == accuracy on them
    labels = balanced_labels(200, 10)
    sample = class_queue_sampler(tx, ty, restart=True)
    expected = accuracy(net, sample(labels), labels)
    value, protocol = gan_test(sample, net, 10, num_samples=200, recipe=FAST, seed=0)
    assert value == expected and protocol["metric"] == "gan_test"
    values, protocol = classification_scores(sample, train, (tx, ty), 10, num_samples=200, recipe=FAST, seed=0)
    assert set(values) == {"cas", "gan_test", "real_acc"} and values["gan_test"] == value
    assert values["real_acc"] == accuracy(net, tx, ty)
    assert protocol["label_distribution"] == "balanced" and protocol["clf_name"] == "small-cnn-v1"


def test_errors():
    with pytest.raises(ConfigError, match="classifier recipe steps must be a positive integer"):
        check_recipe(dataclasses.replace(RECIPE, steps=0))
    with pytest.raises(ValueError, match="must be uint8"):
        cas(lambda y: torch.zeros(y.shape[0], 1, 8, 8), (torch.zeros(1, 1, 8, 8, dtype=torch.uint8), torch.zeros(1).long()),
            10, num_samples=10, recipe=FAST)


@needs_fmnist
def test_recipe_on_a_fashion_mnist_subset():
    tr = load_dataset("fashion-mnist", split="train", resolution=28)
    te = load_dataset("fashion-mnist", split="test", resolution=28, limit=2000)
    idx = per_class_indices(tr.labels, 100, seed=0)
    value, _ = real_accuracy((tr.images[idx], tr.labels[idx]), (te.images, te.labels), 10,
                             dataclasses.replace(RECIPE, steps=150), seed=0)
    assert 0.68 < value < 0.85  # 1000 images, 150 steps (the full recipe: ~90% on all 60k)
