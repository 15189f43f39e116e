"""model.sync_bn: under DDP every BatchNorm normalises with the global batch's statistics, so two
ranks (gloo, CPU: raygan.engine.syncbn's all-reduce BN, torch's SyncBatchNorm being GPU-only)
train a BN GAN as one process with the summed batch does; without it they do not."""
import torch
import torch.nn.functional as F

from raygan.models import build_models

B, STEPS = 16, 3  # global batch, steps


def _train(rank: int, world: int, init_file, out) -> None:
    """A few D and G steps (non-saturating loss, SGD) of a dcgan with BN in G and D on fixed data,
    rank r taking its slice of the global batch: with sync_bn (`sync`) and, on 2 ranks, without."""
    import torch.distributed as tdist

    torch.set_num_threads(1)
    if world > 1:
        tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    got = {name: _steps(rank, world, sync) for name, sync in (("sync", True), ("plain", False))[:world]}
    if world > 1:  # the config switch: the task converts its networks under DDP
        from torch.nn.parallel import DistributedDataParallel as DDP

        from helpers import engine_tiny

        from raygan.engine.loop import Trainer

        t = Trainer(engine_tiny("model.sync_bn=true"), None, prepare_model=DDP, evaluator=None)
        got["built"] = _kinds(t.task.G_plain, t.task.D_plain)
        tdist.destroy_process_group()
    if rank == 0:
        torch.save(got, out)


def _kinds(*nets):
    return sorted({type(m).__name__ for n in nets for m in n.modules()})


def _steps(rank: int, world: int, sync: bool):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from raygan.engine.syncbn import convert_sync_bn

    torch.manual_seed(0)
    G, D = build_models("dcgan", resolution=28, channels=1, z_dim=8, g={"ngf": 8}, d={"ndf": 8})
    x, z = torch.rand(B, 1, 28, 28) * 2 - 1, torch.randn(STEPS, B, 8)
    mine = slice(rank * B // world, (rank + 1) * B // world)
    if world > 1 and sync:
        G, D = convert_sync_bn(G), convert_sync_bn(D)
    plain_g, plain_d = G, D
    if world > 1:
        G, D = DDP(G), DDP(D)
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)
    for s in range(STEPS):
        zs = z[s][mine]
        opt_d.zero_grad()
        (F.softplus(-D(x[mine])).mean() + F.softplus(D(G(zs).detach())).mean()).backward()
        opt_d.step()
        opt_g.zero_grad()
        F.softplus(-D(G(zs))).mean().backward()
        opt_g.step()
    return {"G": plain_g.state_dict(), "D": plain_d.state_dict(), "kinds": _kinds(plain_g, plain_d)}


def _differs(one, two):
    return [f"{net}.{k}" for net in ("G", "D") for k, v in one[net].items()
            if v.is_floating_point() and not torch.allclose(two[net][k], v, rtol=1e-4, atol=1e-5)]


def test_two_ranks_with_sync_bn_train_like_one_rank_with_the_summed_batch(tmp_path):
    import torch.multiprocessing as mp

    _train(0, 1, None, tmp_path / "one.pt")
    mp.spawn(_train, args=(2, str(tmp_path / "init"), tmp_path / "two.pt"), nprocs=2)
    one, two = torch.load(tmp_path / "one.pt")["sync"], torch.load(tmp_path / "two.pt")
    assert "AllReduceBatchNorm" in two["sync"]["kinds"] and "BatchNorm2d" not in two["sync"]["kinds"]
    assert "AllReduceBatchNorm" in two["built"] and "BatchNorm2d" not in two["built"]
    assert _differs(one, two["sync"]) == []  # weights and running statistics alike
    assert len(_differs(one, two["plain"])) > 5  # per-rank BN statistics: another training


def test_converted_bn_shares_its_tensors_and_keeps_checkpoint_names():
    from raygan.engine.syncbn import AllReduceBatchNorm, convert_sync_bn

    G, _ = build_models("dcgan", resolution=28, channels=1, z_dim=8, g={"ngf": 8})
    names = list(G.state_dict())
    weight = G.norms[0].bn.weight
    G = convert_sync_bn(G)
    assert isinstance(G.norms[0].bn, AllReduceBatchNorm) and G.norms[0].bn.weight is weight
    assert list(G.state_dict()) == names
    with torch.no_grad():  # one process: plain BatchNorm's numbers
        G2, _ = build_models("dcgan", resolution=28, channels=1, z_dim=8, g={"ngf": 8})
        G2.load_state_dict(G.state_dict())
        z = torch.randn(4, 8)
        assert torch.equal(G(z), G2(z))
