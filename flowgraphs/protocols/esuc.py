"""ESUC, ES-Sketching UE-Completing: the ES sends a rough sketch; the UE completes it with img2img.

    UE --prompt (+ image)--> ES1   ES1: few-step img2img, decode, downsample -> sketch
    UE <------sketch-------- ES1   UE: upsample, img2img under the prompt at a strength set by the sketch's noise
"""


def run(st):
    ue, es = "UE", st.g.es[0]
    prompt = st.send_prompt(ue, es, st.task.prompt)
    image = st.input_image(ue, es)
    sketch = st.sketch(es, image, st.encode_prompt(es, prompt))
    received, noise_var = st.send_image(es, ue, sketch, payload="sketch")
    return st.complete(ue, received, st.encode_prompt(ue, st.task.prompt), noise_var)
