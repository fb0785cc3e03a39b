"""CT2 → transformers Whisper: a tiny Whisper converted by CTranslate2's own converter and back
must give the original weights exactly (the teacher for real models is made this way)."""

import torch
from transformers import WhisperForConditionalGeneration

from adapters.weights.ct2_whisper import convert_ct2_whisper, read_ct2


def test_round_trip_is_exact(tiny, tmp_path):
    original = WhisperForConditionalGeneration.from_pretrained(tiny["whisper"]).state_dict()
    ct2 = read_ct2(f"{tiny['whisper-ct2']}/model.bin")
    assert "encoder/layer_0/self_attention/linear_0/weight" in ct2  # fused q/k/v, as CT2 stores them
    back = WhisperForConditionalGeneration.from_pretrained(convert_ct2_whisper(tiny["whisper-ct2"], str(tmp_path / "hf"))).state_dict()
    assert set(back) == set(original)
    for name, tensor in original.items():
        torch.testing.assert_close(back[name], tensor, rtol=0, atol=0, msg=name)
