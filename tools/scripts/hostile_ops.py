#!/usr/bin/python3
"""Single-node models with hostile attribute and input values (huge, negative,
INT64_MIN/MAX, inf, NaN), run through `sarai-rt run`: every run must end with
exit code 0 or 1 and, on 1, exactly one line on stderr, within 60 s.

    /usr/bin/python3 tools/scripts/hostile_ops.py SEED COUNT [SARAI_RT]

Prints each failure (and saves its model as /tmp/sarai_hostile/badN.onnx) and
then "bad N". Issue 16's sweep; not part of the test suite (it takes ~1 s
per 20 models).
"""
import random, subprocess, sys, os, onnx, numpy as np
from onnx import helper, TensorProto, numpy_helper
B=sys.argv[3] if len(sys.argv)>3 else 'build/release/sarai-rt'
D='/tmp/sarai_hostile'
os.makedirs(D, exist_ok=True)
H=[0,1,-1,2,3,-2,2**31,2**32,2**62,2**63-1,-2**63,-2**62,7,64,1000000]
F=[0.0,-0.0,1.0,-1.0,1e30,-1e30,float('inf'),float('-inf'),float('nan'),3e18,1e-30]
rng=random.Random(int(sys.argv[1]) if len(sys.argv)>1 else 1)
def hi(): return rng.choice(H)
def hl(n): return [hi() for _ in range(n)]
def ints_init(name,n): return numpy_helper.from_array(np.array(hl(n),np.int64),name)
def floats_init(name,n): return numpy_helper.from_array(np.array([rng.choice(F) for _ in range(n)],np.float32),name)
X=[1,3,8,8]
def case():
    op=rng.choice(['Conv','ConvTranspose','MaxPool','AveragePool','Slice','Split','Reshape','Expand','Range','Gather','Concat','Transpose','Flatten','Squeeze','Unsqueeze','ConstantOfShape','Shape','Softmax','LayerNormalization','ReduceMean','Resize','Gemm','MatMul','Cast','Clip','QuantizeLinear','DequantizeLinear','BatchNormalization','Where','Pow','Div','GlobalAveragePool','HardSigmoid','Gelu'])
    inits=[]; ins=['x']; attrs={}
    if op in ('Conv','ConvTranspose'):
        w=numpy_helper.from_array(np.random.rand(*([4,3,3,3] if op=='Conv' else [3,4,3,3])).astype(np.float32),'w'); inits=[w]; ins=['x','w']
        for a in rng.sample(['strides','pads','dilations','kernel_shape','group','output_shape','output_padding','auto_pad'],rng.randint(1,3)):
            if a=='group': attrs[a]=hi()
            elif a=='auto_pad': attrs[a]=rng.choice(['SAME_UPPER','VALID','SAME_LOWER','NOTSET','bad'])
            elif a in('pads',): attrs[a]=hl(4)
            else: attrs[a]=hl(2)
    elif op in ('MaxPool','AveragePool'):
        attrs['kernel_shape']=hl(2)
        for a in rng.sample(['strides','pads','dilations','ceil_mode','auto_pad'],rng.randint(0,2)):
            attrs[a]= hl(4) if a=='pads' else hi() if a=='ceil_mode' else rng.choice(['SAME_UPPER','VALID']) if a=='auto_pad' else hl(2)
    elif op=='Slice':
        inits=[ints_init('s',2),ints_init('e',2),ints_init('a',2),ints_init('st',2)]; ins=['x','s','e','a','st']
    elif op=='Split':
        inits=[ints_init('sp',2)]; ins=['x','sp']; attrs['axis']=rng.choice([0,1,2,3,-1,hi()])
    elif op in ('Reshape','Expand','ConstantOfShape'):
        inits=[ints_init('sh',rng.randint(1,4))]; ins=['sh'] if op=='ConstantOfShape' else ['x','sh']
    elif op=='Range':
        inits=[numpy_helper.from_array(np.array(rng.choice(F),np.float32),k) for k in 'abc']; ins=['a','b','c']
    elif op=='Gather':
        inits=[ints_init('i',3)]; ins=['x','i']; attrs['axis']=rng.choice([0,1,-1,hi()])
    elif op=='Concat': ins=['x','x']; attrs['axis']=rng.choice([0,1,-1,hi()])
    elif op=='Transpose': attrs['perm']=hl(4)
    elif op in ('Flatten','Softmax'): attrs['axis']=hi()
    elif op in ('Squeeze','Unsqueeze'): inits=[ints_init('ax',rng.randint(1,3))]; ins=['x','ax']
    elif op=='Shape': attrs['start']=hi(); attrs['end']=hi()
    elif op=='LayerNormalization':
        inits=[floats_init('sc',8)]; ins=['x','sc']; attrs['axis']=hi(); attrs['epsilon']=rng.choice(F)
    elif op=='ReduceMean': inits=[ints_init('ax',2)]; ins=['x','ax']; attrs['keepdims']=rng.choice([0,1,hi()])
    elif op=='Resize':
        if rng.random()<0.5: inits=[floats_init('sc',4)]; ins=['x','','sc']
        else: inits=[ints_init('sz',4)]; ins=['x','','','sz']
        attrs['mode']=rng.choice(['nearest','linear','cubic'])
    elif op=='Gemm':
        inits=[numpy_helper.from_array(np.random.rand(8,8).astype(np.float32),'b')]; ins=['x','b']; attrs['transA']=rng.choice([0,1,hi()]); attrs['transB']=rng.choice([0,1,hi()])
    elif op=='MatMul': inits=[numpy_helper.from_array(np.random.rand(8,5).astype(np.float32),'b')]; ins=['x','b']
    elif op=='Cast': attrs['to']=rng.choice([1,2,3,6,7,9,10,11,16,hi()])
    elif op=='Clip': inits=[numpy_helper.from_array(np.array(rng.choice(F),np.float32),'lo')]; ins=['x','lo']
    elif op in ('QuantizeLinear','DequantizeLinear'):
        inits=[floats_init('sc',rng.choice([1,3,8]))]; ins=['x','sc']; attrs['axis']=hi()
    elif op=='BatchNormalization':
        inits=[floats_init(n,3) for n in 'abcd']; ins=['x','a','b','c','d']; attrs['epsilon']=rng.choice(F)
    elif op in ('Where',): inits=[numpy_helper.from_array(np.array([True,False]*4),'c')]; ins=['c','x','x']
    elif op in ('Pow','Div'): inits=[floats_init('e',1)]; ins=['x','e']
    elif op=='HardSigmoid': attrs['alpha']=rng.choice(F); attrs['beta']=rng.choice(F)
    elif op=='Gelu': attrs['approximate']=rng.choice(['none','tanh','x'])
    node=helper.make_node(op,ins,['y'],**attrs)
    g=helper.make_graph([node],'fz',[helper.make_tensor_value_info('x',TensorProto.FLOAT,X)],[helper.make_tensor_value_info('y',TensorProto.UNDEFINED,None)],inits)
    return op, attrs, helper.make_model(g,opset_imports=[helper.make_opsetid('',20)])
bad=0
for k in range(int(sys.argv[2]) if len(sys.argv)>2 else 200):
    op,attrs,m=case()
    path=f'{D}/m{k%4}.onnx'; onnx.save(m,path)
    for cmd in ([B,'run',path,'--random','x=1x3x8x8'],):
        try:
            r=subprocess.run(cmd,capture_output=True,text=True,timeout=60)
        except subprocess.TimeoutExpired:
            print('TIMEOUT',op,attrs,[numpy_helper.to_array(t).tolist() for t in m.graph.initializer]); bad+=1; continue
        lines=r.stderr.strip().split('\n') if r.stderr.strip() else []
        if r.returncode not in (0,1) or (r.returncode==1 and len(lines)!=1):
            bad+=1; print('BAD rc',r.returncode,op,attrs,r.stderr[-300:]); onnx.save(m,f'{D}/bad{bad}.onnx')
print('bad',bad)
