"""EIUG, ES-Inferencing UE-Generating: the ES denoises to the split step; the UE finishes from the seed.

    UE --prompt (+ image)--> ES1   ES1: text encoding, encode + noise the image, steps 0..split
    UE <-------seed--------- ES1   UE: resume (channel-aware for an analog seed), steps split..end, decode
"""


def run(st):
    ue, es = "UE", st.g.es[0]
    prompt = st.send_prompt(ue, es, st.task.prompt)
    image = st.input_image(ue, es)
    seed = st.denoise(es, st.start(es, image), st.encode_prompt(es, prompt), to=st.split_step())
    received = st.resume(ue, *st.send_latent(es, ue, seed))
    return st.decode(ue, st.denoise(ue, received, st.encode_prompt(ue, st.task.prompt)))
