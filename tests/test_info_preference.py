"""The information-preference verdicts read the strongest autoregressive decoder that was run."""

from vaekit.reproduce.info_preference import dashboard


def _r(kl, se=0.05):
    return {"kl": kl, "kl_se": se, "epochs": 10}


def test_the_claims_use_the_pixelcnn_runs_when_present_and_the_made_runs_otherwise():
    made = {"bernoulli_elbo": _r(25.0), "made_elbo": _r(30.0), "made_mmd": _r(200.0)}
    d = dashboard(made)
    assert [c["holds"] for c in d["claims"]] == [True, False, True]
    assert "made" in d["claims"][1]["claim"] and "MADE" in d["budget"]
    both = {**made, "pixelcnn_elbo": _r(0.4), "pixelcnn_mmd": _r(15.0)}
    d = dashboard(both)
    assert [c["holds"] for c in d["claims"]] == [True, True, True]
    assert "pixelcnn" in d["claims"][1]["claim"] and "PixelCNN" in d["budget"]
    # within 2 s.e. of a bound: undecided
    assert dashboard({**both, "pixelcnn_elbo": _r(1.95, 0.1)})["claims"][1]["holds"] is None
