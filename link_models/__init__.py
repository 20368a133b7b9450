"""link_models"""
