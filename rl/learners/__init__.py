"""rl/learners"""
