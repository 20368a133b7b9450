"""CIAG, Collaborative Inferencing And Generating: UE and ES share the work, seeds both ways.

    UE: encode image, noise to the strength -> seed (the image must be at the UE)
    UE --seed, prompt--> ES1       ES1: the heavy middle steps 0..split
    UE <-----seed------- ES1       UE: resume, the last steps split..end, decode
"""


def run(st):
    ue, es = "UE", st.g.es[0]
    seed = st.start(ue, st.ue_image())
    received = st.resume(es, *st.send_latent(ue, es, seed))
    cond_es = st.encode_prompt(es, st.send_prompt(ue, es, st.task.prompt))
    middle = st.denoise(es, received, cond_es, to=st.split_step())
    back = st.resume(ue, *st.send_latent(es, ue, middle))
    return st.decode(ue, st.denoise(ue, back, st.encode_prompt(ue, st.task.prompt)))
